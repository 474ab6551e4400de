"""Patterns on the real broker: a small synthetic place with known wards and domains goes
through the whole pipeline, and GET /v1/patterns gives what the test computes from the
inputs on its own and puts through the disclosure rule; no count of 1 to 4 is published
anywhere; events past their window's grace are counted late; a withdrawal takes its person
out of the open windows."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from typing import Any

from connectors import EventDraft, Publisher
from connectors.simulate import synthetic_nhs_number
from hub.config import Settings
from hub.disclosure import control
from hub.models import (
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    PatternCell,
    Payload,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.expected_patterns import published
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_stream_core import consent_draft, draft, wait_until

WARDS = ["E05000001", "E05000002", "E05000003"]
NOW = datetime.now(UTC).replace(microsecond=0)
PAYLOADS: dict[str, tuple[str, Payload]] = {
    "housing.arrears": ("council-housing", HousingEvent(kind=HousingKind.ARREARS)),
    "education.suspension": (
        "northfield-school",
        EducationEvent(kind=EducationKind.SUSPENSION),
    ),
    "health.ae_attendance": ("city-health", HealthEvent(kind=HealthKind.AE_ATTENDANCE)),
}
STEWARD = "demo-steward"


@dataclass(frozen=True)
class Sent:
    """One event the test sends, as the test itself counts it."""

    person: str
    event_type: str
    at: datetime
    area: str | None


NUMBERS = random.Random(3)


def people(n: int) -> list[str]:
    """``n`` synthetic NHS numbers (valid check digits), none given before."""
    return [synthetic_nhs_number(NUMBERS) for _ in range(n)]


def place(seed: int = 5) -> list[Sent]:
    """40 people in three wards (a few with no ward), one to three events each over this
    week and the one or two before: within grace."""
    rng = random.Random(seed)
    sent = []
    for i, person in enumerate(people(40)):
        area = None if i % 13 == 0 else rng.choice(WARDS)
        for _ in range(rng.randint(1, 3)):
            at = NOW - timedelta(hours=rng.randint(1, 10 * 24))
            sent.append(Sent(person, rng.choice(list(PAYLOADS)), at, area))
    return sent


def publish(settings: Settings, sent: list[Sent], consent: str | None = None) -> None:
    by_partner: dict[str, list[EventDraft]] = defaultdict(list)
    for s in sent:
        partner, payload = PAYLOADS[s.event_type]
        e = draft(
            {"nhs": s.person},
            payload,
            consent_id=consent,
            agreement_id=None if consent else TEST_AGREEMENT_ID,
            event_id=str(uuid.uuid4()),
        )
        by_partner[partner].append(e.model_copy(update={"occurred_at": s.at, "area_code": s.area}))
    for partner, drafts in by_partner.items():
        with Publisher(partner, "sim", settings) as publisher:
            publisher.publish_many(drafts)


# -- the test's own reckoning, from the inputs ----------------------------------------------


def week_of(at: datetime) -> date:
    return at.date() - timedelta(days=at.weekday())


def month_of(at: datetime) -> date:
    return at.date().replace(day=1)


Cell = tuple[str, str, str, str | None, str]  # granularity, window start, measure, area, what


def expected(sent: list[Sent], late: list[Sent]) -> tuple[dict[Cell, int | None], dict[Any, Any]]:
    """Every published cell (its value after the disclosure rule) and late count, by hand."""
    counts: dict[Cell, int] = defaultdict(int)
    people: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        people[s.person].append(s)
    for events in people.values():
        for granularity, start_of in (("week", week_of), ("month", month_of)):
            for start in {start_of(e.at) for e in events}:
                inside = [e for e in events if start_of(e.at) == start]
                new = "returning" if any(e.at.date() < start for e in events) else "new"
                with_area = sorted((e.at, e.area) for e in inside if e.area)
                area = with_area[-1][1] if with_area else "-"
                types = {e.event_type for e in inside}
                domains = sorted({t.split(".")[0] for t in types})
                what = [("domain", d) for d in domains] + [("event_type", t) for t in types]
                what += [("co_occurrence", f"{a}+{b}") for a, b in combinations(domains, 2)]
                what.append(("new_or_returning", new))
                # Not a pattern (GET /v1/flows shows it), but the hub puts it through
                # control with them: with new or returning it adds up to everyone seen.
                partners = {PAYLOADS[e.event_type][0] for e in inside}
                what.append(("services", "one" if len(partners) == 1 else "several"))
                for where in (area, None):
                    for measure, combination in what:
                        counts[granularity, start.isoformat(), measure, where, combination] += 1
    # Through the rule as the hub gives it control (tests.expected_patterns.published: each
    # place total with its areas, and the hidden total of everyone seen).
    shown = published(counts)  # type: ignore[arg-type]  # window starts as ISO strings here
    patterns = {c: v for c, v in shown.items() if c[2] != "services"}
    late_counts: dict[tuple[str, str], int] = defaultdict(int)
    for s in late:
        late_counts["week", week_of(s.at).isoformat()] += 1
        late_counts["month", month_of(s.at).isoformat()] += 1
    return patterns, control(late_counts, [])


def answered(worker: WorkerProcess) -> tuple[dict[Cell, int | None], dict[Any, Any]]:
    reply = worker.get("/v1/patterns", token=STEWARD)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    cells = {
        (
            c["granularity"],
            c["window_start"][:10],
            c["measure"],
            c["area_code"],
            c["combination_code"],
        ): c["count"]
        for c in body["cells"]
    }
    for c in body["cells"]:
        assert c["suppressed"] == (c["count"] is None)
    late = {(c["granularity"], c["window_start"][:10]): c["count"] for c in body["late_events"]}
    return cells, late


def wait_for_patterns(worker: WorkerProcess, sent: list[Sent], late: list[Sent]) -> None:
    want = expected(sent, late)

    def differences() -> str:
        got = answered(worker)
        wrong = {k for k in want[0].keys() | got[0].keys() if want[0].get(k, 0) != got[0].get(k, 0)}
        return f"{len(wrong)} cells differ, e.g. {sorted(wrong, key=str)[:3]}; late {got[1]}"

    wait_until(lambda: answered(worker) == want, timeout_s=90, describe=differences)


def assert_no_small_count_on_the_topic(settings: Settings) -> None:
    """Every cell on hub.patterns is suppressed or a multiple of 5 of at least 5."""
    serde = Serde(SchemaRegistry(settings))
    values = [v for _, v, _ in read_topic(settings, Topics(settings.topic_prefix).patterns) if v]
    assert values
    for value in values:
        cell = serde.decode(value, PatternCell)
        assert cell.count is None or (cell.count >= 5 and cell.count % 5 == 0)


def test_patterns_match_the_inputs_after_disclosure_control_with_late_events_and_erasure(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker(partitions=1)  # one watermark: lateness is the place's
    settings = worker.settings
    sent = place()
    publish(settings, sent)
    wait_for_patterns(worker, sent, [])

    # Five people's events past their window's grace (their week and month ended more
    # than 14 days before the place's latest event): late, not in their windows. One more
    # person's events, last week (within grace), under a consent that is then withdrawn.
    long_ago = NOW - timedelta(days=75)
    late = [Sent(p, "housing.arrears", long_ago, WARDS[0]) for p in people(5)]
    publish(settings, late)
    (nhs,) = people(1)
    withdrawn = [
        Sent(nhs, "housing.arrears", NOW - timedelta(days=8), WARDS[1]),
        Sent(nhs, "health.ae_attendance", NOW - timedelta(days=8), WARDS[1]),
    ]
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent_draft("c-w", {"nhs": nhs}))
    publish(settings, withdrawn, consent="c-w")
    wait_for_patterns(worker, sent + withdrawn, late)
    cells, late_counts = answered(worker)
    assert late_counts[("week", week_of(late[0].at).isoformat())] == 5
    assert not any(c[1] == week_of(late[0].at).isoformat() for c in cells)

    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent_draft("c-w", {"nhs": nhs}, withdrawn=True))
    wait_for_patterns(worker, sent, late)
    assert_no_small_count_on_the_topic(settings)
    cells, late_counts = answered(worker)
    assert all(v is None or (v >= 5 and v % 5 == 0) for v in cells.values())

    # The exports: every cell and late count, each row with its window and the rule.
    as_csv = worker.get("/v1/patterns/export?format=csv", token=STEWARD)
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert len(lines) == 1 + len(cells) + len(late_counts)
    assert lines[0].startswith("granularity,window_start,window_end,")
    as_json = worker.get("/v1/patterns/export?format=json&window=week", token=STEWARD).json()
    assert as_json["filters"]["window"] == "week"
    assert {r["granularity"] for r in as_json["rows"]} == {"week"}


def test_patterns_need_a_steward_or_an_admin_and_refuse_a_bad_filter(
    worker: WorkerProcess,
) -> None:
    assert worker.get("/v1/patterns", token=None).status_code == 401
    assert worker.get("/v1/patterns", token="demo-practitioner-housing").status_code == 403
    refused = worker.get("/v1/patterns?window=day", token=STEWARD)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"pointer": "window", "message": "must be week or month"}]
    assert worker.get("/v1/patterns/export", token="demo-practitioner-housing").status_code == 403
    assert worker.get("/v1/patterns/export?format=xml", token=None).status_code == 401
    assert worker.get("/v1/patterns/export?format=xml", token=STEWARD).status_code == 422
    empty = worker.get("/v1/patterns?area=E05000001&area=place", token="demo-admin")
    assert empty.status_code == 200 and empty.json()["cells"] == []
