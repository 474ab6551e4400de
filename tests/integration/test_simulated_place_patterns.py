"""Issue 13's done-when for the patterns, on the real broker, fed by the simulated place.

``connectors.simulate.Place`` publishes its consents and events through the SDK (its own
``publish``) to a one-partition worker (one watermark: lateness is the place's). The test
knows every event the place made and whose it is: every event carries its person's NHS
number, a housing record their council reference and a school's their UPN, each unique to
one simulated person, so identity joins exactly one simulated person's events (the test
checks the identifiers are unique). The police and children's services share under the
safeguarding agreement (``deploy/local/agreements``, copied into the worker's agreements),
so theirs are admitted when it covers their event type; every other partner's under the
person's consent, so a person without one has none of those admitted (they wait in
quarantine).

From that alone ``tests.expected_patterns`` reckons every window's people per cell,
through disclosure control, without the hub's stage code; GET /v1/patterns must give
exactly that for the patterns' measures (domain, event type, co-occurrence, new or
returning), and ``hub.patterns`` the flows' (transitions, referrals by receiving partner
and step, one service or several; the median days are left to tests/integration/
test_flows.py). The grace period is chosen from the place's events so that none of them
is late, whatever order the partners' topics are read in; then old events arrive: six
dated in a week and month closed beyond grace (counted late in both, not in the windows),
six in a week closed beyond grace within a month still open (late in the week, counted in
the month), and six in a week that had ended but is within grace (counted in it). No count
of 1 to 4 is published on the API or on ``hub.patterns``, and a reader who sets every
published pattern beside the others (areas against the place, a month against its weeks,
neighbouring weeks through their month; ``tests.expected_patterns.reader_constraints``)
pins no suppressed cell.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import EventDraft, Publisher
from connectors.simulate import PARTNERS, Place, SimPerson, recent_start
from hub.config import PROJECT_ROOT, Settings
from hub.models import PatternCell
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.expected_patterns import (
    Cell,
    Sent,
    closed,
    late_counts,
    pinned,
    published,
    reader_constraints,
    true_counts,
    windows,
)
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_patterns import assert_no_small_count_on_the_topic
from tests.integration.test_stream_core import wait_until

STEWARD = "demo-steward"
MEASURES = ("domain", "event_type", "co_occurrence", "new_or_returning")
FLOWS = ("transition", "services", "referral")
SEED, PEOPLE, EVENTS = 13, 150, 400
LATE_PEOPLE = 6  # per kind of old event: enough for its counts to be published


@pytest.fixture
def agreements_dir(tmp_path: Path) -> Path:
    """The place's own agreements (the safeguarding one the police and children's services
    share under), in force this year and next."""
    folder = tmp_path / "agreements"
    shutil.copytree(PROJECT_ROOT / "deploy" / "local" / "agreements", folder)
    return folder


class PlannedPlace(Place):
    """The simulated place with its events drawn before anything is published, so the
    test can choose the grace period from them; ``publish`` sends exactly those."""

    def __init__(self, seed: int, people: int, events: int, start: datetime) -> None:
        super().__init__(seed=seed, people=people)
        self.planned = list(super().events(events, start))

    def events(self, count: int, start: datetime | None = None) -> Iterator[tuple[str, EventDraft]]:
        return iter(self.planned[:count])


def owner(place: Place, draft: EventDraft) -> SimPerson:
    (person,) = [p for p in place.people if p.nhs_number == draft.identifiers["nhs"]]
    return person


def covered(partner: str, event_type: str) -> bool:
    """Whether the partner's agreement (``deploy/local/agreements``) admits the event type:
    the partner signed it and one of its event type patterns matches."""
    agreement = PARTNERS[partner].agreement
    for path in (PROJECT_ROOT / "deploy" / "local" / "agreements").glob("*.yaml"):
        terms = yaml.safe_load(path.read_text())
        if terms["id"] == agreement and partner in terms["partners"]:
            return any(fnmatchcase(event_type, p) for p in terms["event_types"])
    return False


def admitted(place: Place, events: list[tuple[str, EventDraft]]) -> list[Sent]:
    """The events the gate admits: under the partner's agreement if it covers them, else
    under consent only for someone who consented; each as the test counts it."""
    sent = []
    for partner, draft in events:
        event_type = draft.payload.event_type
        if PARTNERS[partner].agreement:
            if not covered(partner, event_type):
                continue
        elif not owner(place, draft).consented:
            continue
        nhs, to = draft.identifiers["nhs"], getattr(draft.payload, "to_partner", None)
        sent.append(Sent(nhs, event_type, partner, draft.occurred_at, draft.area_code, to))
    return sent


def grace_for(sent: list[Sent]) -> tuple[timedelta, datetime]:
    """A whole number of days of grace, and the time ``watermark - grace`` it puts windows'
    ends against: on the 17th or 18th of a month, before the week of the place's first
    event starts by more than a week, so no event of the place is late and a week from
    before that week is open, while a week early in the month is closed."""
    watermark = max(s.at for s in sent)
    first_week = windows(min(s.at for s in sent))[0][1]
    target = datetime(first_week.year, first_week.month, 18, tzinfo=UTC)
    while target + timedelta(days=1) >= _midnight(first_week) - timedelta(days=7):
        target = (target.replace(day=1) - timedelta(days=1)).replace(day=18)
    grace = timedelta(days=math.ceil((watermark - target) / timedelta(days=1)))
    return grace, watermark - grace


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def old_events(place: Place, cutoff: datetime, first_week: date) -> list[tuple[str, EventDraft]]:
    """Police welfare concerns about simulated people (under the agreement: admitted),
    dated before the place's events: in a week and month both closed beyond grace, in a
    closed week of a month still open, and in the open week before the place's first."""
    times = [
        cutoff.replace(day=1, hour=12) - timedelta(days=20),
        cutoff.replace(day=1, hour=12),
        _midnight(first_week) - timedelta(days=5, hours=-12),
    ]
    events = []
    for n, at in enumerate(times):
        for person in place.people[n * LATE_PEOPLE : (n + 1) * LATE_PEOPLE]:
            moment = at + timedelta(minutes=len(events))
            draft = place.draft(person, "city-police", "police", "WELFARE_CONCERN", moment)
            events.append(("city-police", draft))
    return events


def answered(worker: WorkerProcess) -> tuple[dict[Cell, int | None], dict[Any, Any]]:
    """The patterns' cells and late counts GET /v1/patterns publishes."""
    reply = worker.get("/v1/patterns", token=STEWARD)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    cells: dict[Cell, int | None] = {}
    for c in body["cells"]:
        assert c["suppressed"] == (c["count"] is None)
        if c["measure"] in MEASURES:
            start = date.fromisoformat(c["window_start"][:10])
            key = (c["granularity"], start, c["measure"], c["area_code"], c["combination_code"])
            cells[key] = c["count"]
    late = {
        (c["granularity"], date.fromisoformat(c["window_start"][:10])): c["count"]
        for c in body["late_events"]
    }
    return cells, late


def wait_for(
    worker: WorkerProcess,
    want: tuple[dict[Cell, int | None], dict[Any, Any]],
) -> None:
    def differences() -> str:
        got = answered(worker)
        wrong = {k for k in want[0].keys() | got[0].keys() if want[0].get(k, 0) != got[0].get(k, 0)}
        example = sorted(wrong, key=str)[:3]
        return f"{len(wrong)} of {len(want[0])} cells differ, e.g. {example}; late {got[1]}"

    wait_until(lambda: answered(worker) == want, timeout_s=120, describe=differences)


Expected = tuple[dict[Cell, int], dict[Cell, int | None], dict[Any, Any]]


def expectation(
    sent: list[Sent], late: list[Sent], watermark: datetime, grace: timedelta
) -> Expected:
    """The true counts of the windows still open (flows too: one service or several goes
    through control with new or returning), what of them is published, and the late counts."""
    counted = {w for s in sent + late for w in windows(s.at) if not closed(*w, watermark, grace)}
    truth = true_counts(sent + late, counted, flows=True)
    lates = late_counts(w for s in late for w in windows(s.at) if closed(*w, watermark, grace))
    return truth, published(truth), lates


def patterns(expected: Expected) -> tuple[dict[Cell, int | None], dict[Any, Any]]:
    """What GET /v1/patterns should answer: the patterns' measures and the late counts."""
    return {c: v for c, v in expected[1].items() if c[2] in MEASURES}, expected[2]


def flows(expected: Expected) -> dict[Cell, int | None]:
    """The flows' cells ``hub.patterns`` should hold (the medians left out)."""
    return {c: v for c, v in expected[1].items() if c[2] in FLOWS}


def topic_cells(settings: Settings) -> dict[Cell, int | None]:
    """The flows' cells on ``hub.patterns`` now: each key's latest record, less tombstones."""
    serde = Serde(SchemaRegistry(settings))
    latest = dict(
        (k, v) for k, v, _ in read_topic(settings, Topics(settings.topic_prefix).patterns)
    )
    cells: dict[Cell, int | None] = {}
    for value in latest.values():
        cell = serde.decode(value, PatternCell) if value else None
        if cell is not None and cell.measure in FLOWS:
            start = cell.window_start.astimezone(UTC).date()
            key = (cell.granularity, start, cell.measure, cell.area_code, cell.combination_code)
            cells[key] = cell.count
    return cells


def test_the_simulated_place_s_patterns_match_the_reckoning_after_disclosure_control(
    make_worker: WorkerFactory,
) -> None:
    place = PlannedPlace(SEED, PEOPLE, EVENTS, recent_start(60))
    for scheme in ("nhs_number", "upn", "council_ref"):
        held = [getattr(p, scheme) for p in place.people if getattr(p, scheme)]
        assert len(held) == len(set(held)), f"{scheme}: two simulated people share one"
    sent = admitted(place, place.planned)
    grace, cutoff = grace_for(sent)
    watermark = max(s.at for s in sent)
    worker = make_worker(partitions=1, patterns_grace_days=grace.days)
    settings = worker.settings

    place.publish(settings, EVENTS)
    expected = expectation(sent, [], watermark, grace)
    assert not any(closed(*w, watermark, grace) for s in sent for w in windows(s.at))
    wait_for(worker, patterns(expected))

    first_week = windows(min(s.at for s in sent))[0][1]
    old = old_events(place, cutoff, first_week)
    with Publisher("city-police", "niche-police", settings) as police:
        police.publish_many([draft for _, draft in old])
    late = admitted(place, old)
    expected = expectation(sent, late, watermark, grace)
    cells, lates = patterns(expected)
    # Each kind of old event is there: late in both its windows, late in its week but
    # counted in its month, and counted in its week though it had ended.
    beyond, month_open, within = (late[n * LATE_PEOPLE].at for n in range(3))
    (week, month) = windows(beyond)
    assert lates[week] == lates[month] == 5
    assert not any(c[:2] in (week, month) for c in cells)
    (week, month) = windows(month_open)
    assert lates[week] == 5 and month not in lates
    assert cells[("month", month[1], "domain", None, "police")] is not None
    (week, _) = windows(within)
    assert week not in lates and cells[("week", week[1], "domain", None, "police")] == 5
    assert watermark > datetime.combine(week[1] + timedelta(days=7), datetime.min.time(), UTC)
    wait_for(worker, patterns(expected))
    want_flows = flows(expected)
    assert {c[2] for c in want_flows} == set(FLOWS)  # the place has every flow
    wait_until(lambda: topic_cells(settings) == want_flows, timeout_s=60)

    shown, _ = answered(worker)
    assert all(v is None or (v >= 5 and v % 5 == 0) for v in shown.values())
    assert any(v is None for v in shown.values()) and any(v for v in shown.values())
    assert_no_small_count_on_the_topic(settings)

    # The reader: every published number beside every other, suppressed cells at their
    # true counts known to the test; none is the only value the published ones allow.
    truth = {c: n for c, n in expected[0].items() if c[2] in MEASURES}
    assert not [c for c in truth if c[3] == "-"], "every simulated event names a ward"
    shut = {w for s in late for w in windows(s.at) if closed(*w, watermark, grace)}
    constraints = reader_constraints(truth.keys() | shown.keys(), shut)
    assert pinned(truth, shown, constraints) == []
