"""Both patterns stages with plain dicts: people's cells and their deltas (windows, grace,
late events, erasure), then each window's counts published under disclosure control."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from hub import batch
from hub.batch import Op
from hub.disclosure import RULE, control
from hub.models import HealthEvent, HealthKind, PatternCell
from hub.stages.effects import Effects, Record, State
from hub.stages.pattern_people import LATE_METRIC, PatternPeopleStage, watermark_key
from hub.stages.pattern_windows import LATE, windows_of
from hub.stages.patterns import PatternsStage, margins_of, publishable
from hub.stages.view import ViewStage, entry_for
from tests.unit import factories
from tests.unit.test_stages import (
    CTX,
    NOW,
    PERSON,
    SERDE,
    event_item,
    items_on,
    record,
    run,
    view_record,
    written,
)

GRACE = timedelta(days=14)
PATTERNS_CTX = dataclasses.replace(CTX, patterns_grace=GRACE)
WARD, OTHER = "E05000001", "E05000002"
PEOPLE = PatternPeopleStage(PATTERNS_CTX)
COUNTS = PatternsStage(PATTERNS_CTX)


def entry(
    n: int, event_type: str, at: datetime, area: str | None = WARD, arrived: bool = True
) -> dict[str, Any]:
    """One entry as the view sends it (codes and dates; ``arrived``: a partner's record
    added it in the view's batch)."""
    fields = {
        "event_id": f"e-{n}",
        "partner_id": "council-housing",
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "area_code": area,
        "purpose": "early-help",
        "basis": "agreement:dsa-1",
        "source_ref": "REF-1",
    }
    return fields | ({"arrived": True} if arrived else {})


def timelines(people: dict[str, list[dict[str, Any]]], offset: int = 0) -> Record:
    """One batch record of timelines on partition 0 (the watermark's partition)."""
    items = [
        batch.Item(Op.TIMELINE, person, raw=json.dumps(entries).encode())
        for person, entries in people.items()
    ]
    return record(PATTERNS_CTX.internal.patterns, batch.encode(items), offset, 0)


def deltas(effects: Effects) -> dict[tuple[str, str], int]:
    """(window id, cell) → the change sent, summed over the records."""
    found: dict[tuple[str, str], int] = {}
    for out in effects.outputs:
        assert out.topic == PATTERNS_CTX.internal.pattern_deltas and out.key is not None
        for _, changes in json.loads(out.value or b"")["parts"]:
            for cell, n in changes.items():
                key = (out.key.decode(), cell)
                found[key] = found.get(key, 0) + n
    return found


def people_step(
    people: dict[str, list[dict[str, Any]]], table: dict[Any, Any], offset: int = 0
) -> tuple[Effects, dict[Any, Any]]:
    """Run the people stage on ``people`` over ``table``; the table as it is after."""
    effects, state = run(PEOPLE, [timelines(people, offset)], pattern_people=table)
    after = dict(table)
    for key, value in written(state, "pattern-people").items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    return effects, after


THIS_WEEK = NOW - timedelta(hours=2)
WEEK, MONTH = (w.id for w in windows_of(THIS_WEEK))


def test_a_timeline_adds_its_person_to_each_cell_once_and_nothing_when_it_is_unchanged() -> None:
    alice = [entry(1, "housing.arrears", THIS_WEEK), entry(2, "education.suspension", THIS_WEEK)]
    effects, table = people_step({"p-alice": alice}, {})
    sent = deltas(effects)
    assert sent[WEEK, f"co_occurrence|{WARD}|education+housing"] == 1
    assert sent[MONTH, "domain||housing"] == 1
    assert set(sent.values()) == {1}
    assert table[watermark_key(0)] == {"at": THIS_WEEK.isoformat()}
    effects, _ = people_step({"p-alice": alice}, table, offset=1)
    assert effects.outputs == []  # the same cells: nothing changed


def test_an_erased_person_leaves_every_open_window_and_their_row_goes() -> None:
    alice = [entry(1, "housing.arrears", THIS_WEEK)]
    first, table = people_step({"p-alice": alice}, {})
    effects, table = people_step({"p-alice": []}, table, offset=1)
    assert deltas(effects) == {key: -n for key, n in deltas(first).items()}
    assert b"p-alice" not in table


def test_a_split_takes_only_what_the_person_no_longer_has() -> None:
    both = [entry(1, "housing.arrears", THIS_WEEK), entry(2, "education.suspension", THIS_WEEK)]
    _, table = people_step({"p-alice": both}, {})
    effects, _ = people_step({"p-alice": both[:1]}, table, offset=1)
    sent = deltas(effects)
    assert sent[WEEK, f"co_occurrence|{WARD}|education+housing"] == -1
    assert sent[WEEK, "domain||education"] == -1
    assert (WEEK, "domain||housing") not in sent


def test_late_events_beyond_grace_are_counted_late_and_those_within_it_in_their_window() -> None:
    now_ish = [entry(1, "housing.arrears", THIS_WEEK)]
    _, table = people_step({"p-alice": now_ish}, {})  # the watermark moves to this week
    beyond = THIS_WEEK - GRACE - timedelta(days=8)  # its week ended more than grace ago
    within = THIS_WEEK - timedelta(days=8)  # last week: within grace
    beyond_week, beyond_month = (w.id for w in windows_of(beyond))
    within_week = windows_of(within)[0].id
    bob = [entry(2, "health.ae_attendance", beyond), entry(3, "health.ae_attendance", within)]
    effects, table = people_step({"p-bob": bob}, table, offset=1)
    sent = deltas(effects)
    assert sent[beyond_week, LATE] == 1
    assert not any(w == beyond_week and c != LATE for w, c in sent)
    assert sent[within_week, "domain||health"] == 1
    month_late = windows_of(beyond)[1].closed(THIS_WEEK, GRACE)  # the month may be open
    if month_late:
        assert sent[beyond_month, LATE] == 1
    else:
        assert sent[beyond_month, "domain||health"] == 1
    late = {labels: n for (name, labels), n in effects.metrics.items() if name == LATE_METRIC}
    assert late == {("week",): 1, **({("month",): 1} if month_late else {})}
    # The same timeline again, the events no longer new: not late twice.
    again = [e | {"arrived": False} for e in bob]
    effects, _ = people_step({"p-bob": again}, table, offset=2)
    assert deltas(effects) == {}


def test_an_event_a_merge_brings_into_a_closed_window_is_not_late() -> None:
    _, table = people_step({"p-alice": [entry(1, "housing.arrears", THIS_WEEK)]}, {})
    long_ago = THIS_WEEK - GRACE - timedelta(days=40)
    moved = entry(2, "health.ae_attendance", long_ago, arrived=False)
    effects, _ = people_step({"p-alice": [entry(1, "housing.arrears", THIS_WEEK), moved]}, table)
    sent = deltas(effects)
    assert not any(cell == LATE for _, cell in sent)  # it arrived elsewhere: not late here
    assert sent[WEEK, "new_or_returning||returning"] == 1  # alice has history now


def test_a_future_dated_event_moves_the_watermark_only_to_now() -> None:
    future = [entry(1, "housing.arrears", NOW + timedelta(days=400))]
    _, table = people_step({"p-alice": future}, {})
    assert table[watermark_key(0)] == {"at": NOW.isoformat()}


# -- the window stage -------------------------------------------------------------------


def delta_record(window: str, source: int, parts: list[Any], offset: int = 0) -> Record:
    value = json.dumps({"source": source, "parts": parts}).encode()
    return record(PATTERNS_CTX.internal.pattern_deltas, value, offset, 0, key=window.encode())


def published(effects: Effects) -> dict[str, PatternCell | None]:
    out: dict[str, PatternCell | None] = {}
    for o in effects.outputs:
        assert o.topic == PATTERNS_CTX.topics.patterns and o.key is not None
        out[o.key.decode()] = None if o.value is None else SERDE.decode(o.value, PatternCell)
    return out


def counts_step(records: list[Record], table: dict[Any, Any]) -> tuple[Effects, dict[Any, Any]]:
    state = State.of({"pattern-counts": table})
    effects = COUNTS.process(records, state, NOW)
    after = dict(table) | {k: v for k, v in written(state, "pattern-counts").items()}
    return effects, after


def people_in(area: str, n: int, combination: str = "housing") -> dict[str, int]:
    return {f"domain|{area}|{combination}": n}


def test_a_window_is_published_controlled_and_only_what_changed_goes_again() -> None:
    changes = people_in(WARD, 12) | people_in(OTHER, 3) | people_in("", 15) | {LATE: 6}
    effects, table = counts_step([delta_record(WEEK, 0, [[7, changes]])], {})
    cells = published(effects)
    expected = control(changes, margins_of(changes))
    assert expected[f"domain|{OTHER}|housing"] is None  # 3: suppressed, and so is a second
    assert sum(v is None for v in expected.values()) == 2
    assert {k.split("|", 1)[1]: (c.count if c else 0) for k, c in cells.items()} == expected
    for cell in cells.values():
        assert cell is not None and cell.rule == RULE and cell.granularity == "week"
        assert cell.count is None or (cell.count % 5 == 0 and cell.count >= 5)
    place = cells[f"{WEEK}|domain||housing"]
    assert place is not None and place.area_code is None and place.count == 15
    assert table[WEEK.encode()]["counts"] == changes  # the true counts stay in the table

    # The same record again (a crash's re-send) changes nothing; one more person in the
    # big ward moves its true count but not what is published.
    again = delta_record(WEEK, 0, [[7, changes]], offset=1)
    one_more = delta_record(WEEK, 0, [[8, people_in(WARD, 1) | people_in("", 1)]], offset=2)
    effects, table = counts_step([again, one_more], table)
    assert effects.outputs == []
    assert table[WEEK.encode()]["counts"][f"domain|{WARD}|housing"] == 13


def test_a_cell_that_empties_is_tombstoned_and_no_published_count_is_under_five() -> None:
    changes = people_in(WARD, 5) | people_in("", 5)
    _, table = counts_step([delta_record(WEEK, 1, [[0, changes]])], {})
    gone = {cell: -n for cell, n in changes.items()}
    effects, table = counts_step([delta_record(WEEK, 1, [[1, gone]], offset=1)], table)
    assert published(effects) == {
        f"{WEEK}|domain|{WARD}|housing": None,
        f"{WEEK}|domain||housing": None,
    }
    assert table[WEEK.encode()]["published"] == {}


def test_people_without_an_area_are_a_member_of_the_total_but_never_published() -> None:
    counts = people_in(WARD, 8) | people_in("-", 2) | people_in("", 10)
    shown = publishable(counts)
    assert "domain|-|housing" not in shown
    assert shown == {f"domain|{WARD}|housing": None, "domain||housing": 10}


def test_services_and_new_or_returning_share_a_hidden_total_so_one_cell_is_not_derivable() -> None:
    """one + several = new + returning (everyone seen in the window): with ``one`` at 3
    suppressed alone, 15 new and 12 several gave it away as 15 - 12 (within rounding)."""
    counts = {
        f"new_or_returning|{WARD}|new": 15,
        f"services|{WARD}|one": 3,
        f"services|{WARD}|several": 12,
    }
    counts |= {cell.replace(f"|{WARD}|", "||"): n for cell, n in counts.items()}
    shown = publishable(counts)
    assert shown[f"services|{WARD}|one"] is None
    assert shown[f"services|{WARD}|several"] is None  # the second suppression
    assert shown[f"new_or_returning|{WARD}|new"] == 15
    assert not any(cell.startswith("seen|") for cell in shown)  # the total stays hidden


def test_the_view_sends_each_changed_timeline_to_the_patterns_without_alert_rules() -> None:
    event = factories.event(payload=HealthEvent(kind=HealthKind.AE_ATTENDANCE))
    effects, _ = run(ViewStage(CTX), [view_record([event_item(event, "s1")])])
    assert len(CTX.rules) == 0
    (sent,) = items_on(effects, CTX.internal.patterns)
    assert (sent.op, sent.key) == (Op.TIMELINE, PERSON)
    (seen,) = json.loads(sent.raw or b"")
    assert seen["event_type"] == "health.ae_attendance" and "tokens" not in seen
    assert seen["arrived"] is True  # a partner's record added it in this batch


def test_entries_a_transfer_moves_in_are_not_marked_as_arrivals() -> None:
    event = factories.event(payload=HealthEvent(kind=HealthKind.AE_ATTENDANCE))
    moved = entry_for(event, "s1").model_dump(mode="json")
    transfer = record(CTX.internal.transfer, json.dumps([moved]).encode(), key=PERSON.encode())
    effects, _ = run(ViewStage(CTX), [transfer])
    (sent,) = items_on(effects, CTX.internal.patterns)
    (seen,) = json.loads(sent.raw or b"")
    assert "arrived" not in seen
