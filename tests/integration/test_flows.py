"""Flows on the real broker: a small place whose flows are known (people with housing
arrears referred by the council to the food bank, seen there within days; people seen by
the hospital only; a few who went from the hospital to the council) goes through the whole
pipeline, and GET /v1/flows gives what the test reckons from its own inputs and puts
through the disclosure rule: the transition matrix, the referrals by receiving partner,
one service or several and the median days from a referral to the first contact, each
window and area. Five more people's flows come and, their consents withdrawn, go from the
open windows. No count of 1 to 4 is published on the topic or in the answer."""

from __future__ import annotations

import csv
import io
import math
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors import ConsentDraft, EventDraft, Publisher
from hub.config import Settings
from hub.disclosure import control
from hub.models import (
    CommunityEvent,
    CommunityKind,
    ConsentStatus,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    Payload,
    ReferralEvent,
    ReferralKind,
    ReferralReason,
)
from hub.stages.pattern_flows import MEDIAN_RULE
from tests.expected_patterns import published
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory, write_agreement
from tests.integration.helpers import WorkerProcess
from tests.integration.test_patterns import (
    STEWARD,
    assert_no_small_count_on_the_topic,
    month_of,
    people,
    week_of,
)
from tests.integration.test_stream_core import draft, wait_until

HOUSING, FOOD, HEALTH = "council-housing", "city-food-bank", "city-health"
WARDS = ["E05000001", "E05000002"]
WITHIN = timedelta(days=30)  # Settings.flows_within_days' default
NOW = datetime.now(UTC).replace(microsecond=0)
LAST_MONDAY = datetime.combine(week_of(NOW) - timedelta(days=7), datetime.min.time(), UTC)


@pytest.fixture
def agreements_dir(tmp_path: Path) -> Path:
    """The test's agreement: the food bank shares too, and referrals are shared."""
    partners = (HOUSING, FOOD, HEALTH)
    event_types = ("housing.*", "health.*", "community.*", "referral.*")
    return write_agreement(tmp_path / "agreements", partners, event_types)


@dataclass(frozen=True)
class Sent:
    """One event the test sends, as the test itself counts it."""

    person: str
    partner: str
    event_type: str
    at: datetime
    area: str


def referral(kind: ReferralKind) -> ReferralEvent:
    return ReferralEvent(
        kind=kind, from_partner=HOUSING, to_partner=FOOD, reason_code=ReferralReason.FOOD
    )


PAYLOADS: dict[str, Payload] = {
    "housing.arrears": HousingEvent(kind=HousingKind.ARREARS),
    "health.ae_attendance": HealthEvent(kind=HealthKind.AE_ATTENDANCE),
    "community.food_bank": CommunityEvent(kind=CommunityKind.FOOD_BANK),
    "referral.made": referral(ReferralKind.MADE),
    "referral.accepted": referral(ReferralKind.ACCEPTED),
}


def place(seed: int = 13) -> list[Sent]:
    """15 people referred by the council to the food bank last week and seen there one to
    three days later (most also accepted), 8 seen by the hospital only and 3 who went from
    the hospital to the council: within grace, and within ``WITHIN``."""
    rng = random.Random(seed)
    sent = []
    for person in people(15):
        area = rng.choice(WARDS)
        made = LAST_MONDAY + timedelta(hours=rng.randint(1, 3 * 24))
        seen = made + timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 5))
        sent += [
            Sent(person, HOUSING, "housing.arrears", made - timedelta(hours=1), area),
            Sent(person, HOUSING, "referral.made", made, area),
            Sent(person, FOOD, "community.food_bank", seen, area),
        ]
        if rng.random() < 0.8:
            sent.append(Sent(person, FOOD, "referral.accepted", seen, area))
    for person in people(8):
        at = NOW - timedelta(hours=rng.randint(1, 9 * 24))
        sent.append(Sent(person, HEALTH, "health.ae_attendance", at, rng.choice(WARDS)))
    for person in people(3):
        at = NOW - timedelta(hours=rng.randint(48, 9 * 24))
        area = rng.choice(WARDS)
        sent += [
            Sent(person, HEALTH, "health.ae_attendance", at - timedelta(days=1), area),
            Sent(person, HOUSING, "housing.arrears", at, area),
        ]
    return sent


def publish(settings: Settings, sent: list[Sent], consented: bool = False) -> None:
    """The events, under the agreement or (``consented``) each person's consent."""
    by_partner: dict[str, list[EventDraft]] = defaultdict(list)
    for s in sent:
        e = draft(
            {"nhs": s.person},
            PAYLOADS[s.event_type],
            consent_id=consent_id(s.person) if consented else None,
            agreement_id=None if consented else TEST_AGREEMENT_ID,
            event_id=str(uuid.uuid4()),
        )
        by_partner[s.partner].append(
            e.model_copy(update={"occurred_at": s.at, "area_code": s.area})
        )
    for partner, drafts in by_partner.items():
        with Publisher(partner, "sim", settings) as publisher:
            publisher.publish_many(drafts)


CONSENTS: dict[str, str] = {}  # person → their consent id (never their identifier)


def consent_id(person: str) -> str:
    """The person's consent id: a plain serial, since an id travels in clear."""
    return CONSENTS.setdefault(person, f"c-flows-{len(CONSENTS) + 1}")


def consent(person: str, withdrawn: bool = False) -> ConsentDraft:
    return ConsentDraft(
        consent_id=consent_id(person),
        identifiers={"nhs": person},
        purposes=["early-help"],
        sharing_partners=[HOUSING, FOOD, HEALTH],
        status=ConsentStatus.WITHDRAWN if withdrawn else ConsentStatus.GIVEN,
    )


# -- the test's own reckoning, from the inputs ----------------------------------------------

# granularity, window start, measure, area (None: the place), combination
Cell = tuple[str, str, str, str | None, str]
Shown = dict[Cell, tuple[int | None, int | None]]  # published count, and a median's days


def windows(at: datetime) -> Iterator[tuple[str, date]]:
    yield "week", week_of(at)
    yield "month", month_of(at)


def flows_of(events: list[Sent], inside: list[Sent]) -> set[tuple[str, str]]:
    """The flows one person is counted in (the rules in hub.stages.pattern_flows' docstring)."""
    found = {
        ("transition", f"{came.partner}>{to.partner}")
        for to in inside
        for came in events
        if came.partner != to.partner and to.at - WITHIN <= came.at < to.at
    }
    for e in inside:
        family, kind = e.event_type.split(".")
        if family == "referral":
            found.add(("referral", f"{FOOD}.{kind}"))
    found.add(("services", "one" if len({e.partner for e in inside}) == 1 else "several"))
    return found


def days_of(events: list[Sent], inside: list[Sent]) -> int | None:
    """Whole days from the person's first referral made in the window to their first event
    at the food bank after it, not its answer to the referral (every referral here is the
    council's to the food bank)."""
    made = sorted(e.at for e in inside if e.event_type == "referral.made")
    if not made:
        return None
    contacts = [
        e.at
        for e in events
        if e.partner == FOOD and e.at >= made[0] and not e.event_type.startswith("referral.")
    ]
    return (min(contacts) - made[0]) // timedelta(days=1) if contacts else None


FLOW_MEASURES = ("transition", "referral", "services")


def start_of(start: date) -> datetime:
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def expected(sent: list[Sent]) -> Shown:
    """Every published flow cell, by hand: true counts per window, each place total with
    its wards as margins through the disclosure rule, and each window's median over the
    referrals behind it (published only when their count is)."""
    counts: dict[Cell, int] = defaultdict(int)
    days: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_person: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        by_person[s.person].append(s)
    for events in by_person.values():
        for granularity, start in {w for e in events for w in windows(e.at)}:
            inside = [e for e in events if (granularity, start) in set(windows(e.at))]
            area = max(inside, key=lambda e: e.at).area
            # New or returning is not a flow, but it goes through control with the flows:
            # with one service or several it adds up to everyone seen (a hidden margin).
            returning = any(e.at < start_of(start) for e in events)
            status = ("new_or_returning", "returning" if returning else "new")
            for measure, combination in {*flows_of(events, inside), status}:
                for where in (area, None):
                    counts[granularity, start.isoformat(), measure, where, combination] += 1
            d = days_of(events, inside)
            if d is not None:
                days[granularity, start.isoformat()].append(d)
    shown: Shown = {}
    controlled = published(counts)  # type: ignore[arg-type]  # ISO window starts here
    shown |= {c: (v, None) for c, v in controlled.items() if c[2] in FLOW_MEASURES}
    for (granularity, start), values in days.items():
        median = math.floor(statistics.median(values) + 0.5)
        cell: Cell = (granularity, start, "median_days", None, f"{HOUSING}>{FOOD}")
        (count,) = control({cell: len(values)}, []).values()
        shown[cell] = (count, None if count is None else median)
    return shown


def answered(worker: WorkerProcess) -> Shown:
    """GET /v1/flows for the place and both wards, read back as cells (0: none published)."""
    query = "&".join(f"area={a}" for a in ["place", *WARDS])
    reply = worker.get(f"/v1/flows?{query}", token=STEWARD)
    assert reply.status_code == 200, reply.text
    got: Shown = {}
    for w in reply.json()["windows"]:
        where = (w["granularity"], w["window_start"][:10])
        for i, came in enumerate(w["partners"]):
            for j, to in enumerate(w["partners"]):
                if w["matrix"][i][j] != 0:
                    got[(*where, "transition", w["area"], f"{came}>{to}")] = (
                        w["matrix"][i][j],
                        None,
                    )
        for r in w["referrals"]:
            for kind, n in r.items():
                if kind != "to" and n != 0:
                    got[(*where, "referral", w["area"], f"{r['to']}.{kind}")] = (n, None)
        for kind, n in w["services"].items():
            if n != 0:
                got[(*where, "services", w["area"], kind)] = (n, None)
        for m in w["median_days"]:
            cell = (*where, "median_days", w["area"], f"{m['from']}>{m['to']}")
            got[cell] = (m["referrals"], m["median_days"])
    return got


def test_flows_match_the_inputs_after_disclosure_control(make_worker: WorkerFactory) -> None:
    worker = make_worker(partitions=1)
    sent = place()
    want = expected(sent)
    # The place is what the test says it is: a published transition, referral and median.
    week = week_of(LAST_MONDAY).isoformat()
    assert (want["week", week, "median_days", None, f"{HOUSING}>{FOOD}"][1] or 0) >= 1
    assert any(c[2] == "transition" and v[0] for c, v in want.items())
    assert any(c[2] == "transition" and v[0] is None for c, v in want.items())
    publish(worker.settings, sent)

    def differences() -> str:
        got = answered(worker)
        wrong = sorted((k for k in want.keys() | got.keys() if want.get(k) != got.get(k)), key=str)
        return (
            f"{len(wrong)} cells differ, e.g. {[(k, want.get(k), got.get(k)) for k in wrong[:3]]}"
        )

    wait_until(lambda: answered(worker) == want, timeout_s=90, describe=differences)
    counts = [count for count, _ in answered(worker).values() if count is not None]
    assert counts and all(n >= 5 and n % 5 == 0 for n in counts)
    # The export: every published flow cell of the place, a row each, with the rules.
    exported = worker.get("/v1/flows/export?format=csv&window=week", token=STEWARD)
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    weekly = {c: v for c, v in want.items() if c[0] == "week" and c[3] is None}
    got = {
        (r["granularity"], r["window_start"][:10], r["measure"], None, r["combination_code"]): (
            int(r["count"]) if r["count"] else None,
            int(r["median_days"]) if r["median_days"] else None,
        )
        for r in rows
    }
    assert got == weekly
    assert all(MEDIAN_RULE in r["disclosure_rule"] for r in rows)

    # Five more people from the council to the food bank last week, under consent: the
    # place's transition goes from 15 to 20; withdrawn, they leave the open windows.
    extra = people(5)
    at = LAST_MONDAY + timedelta(days=2)
    more = [Sent(p, HOUSING, "housing.arrears", at, WARDS[0]) for p in extra]
    more += [Sent(p, FOOD, "community.food_bank", at + timedelta(days=1), WARDS[0]) for p in extra]
    with Publisher(HOUSING, "northgate", worker.settings) as housing:
        for person in extra:
            housing.publish_consent(consent(person))
    publish(worker.settings, more, consented=True)
    want = expected(sent + more)
    assert want["week", week, "transition", None, f"{HOUSING}>{FOOD}"] == (20, None)
    wait_until(lambda: answered(worker) == want, timeout_s=90, describe=differences)
    with Publisher(HOUSING, "northgate", worker.settings) as housing:
        for person in extra:
            housing.publish_consent(consent(person, withdrawn=True))
    want = expected(sent)
    wait_until(lambda: answered(worker) == want, timeout_s=90, describe=differences)
    assert_no_small_count_on_the_topic(worker.settings)


def test_flows_need_a_steward_or_an_admin_and_refuse_a_bad_filter(
    worker: WorkerProcess,
) -> None:
    assert worker.get("/v1/flows", token=None).status_code == 401
    assert worker.get("/v1/flows", token="demo-practitioner-housing").status_code == 403
    refused = worker.get("/v1/flows?measure=transition", token=STEWARD)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"pointer": "query", "message": "the filters of flows are area, window, from, to"}
    ]
    empty = worker.get("/v1/flows?window=month", token="demo-admin").json()
    assert empty["windows"] == [] and "rule" in empty["disclosure"]
    assert empty["filters"] == {"area": ["place"], "window": "month", "from": None, "to": None}
