"""Commits follow the stages' marks (``hub.runtime.commits``), not Faust's acks: the real
Faust consumer of a hub, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.types import TP

from hub.app import Hub
from hub.config import Settings
from hub.runtime.commits import mark_key
from hub.stages.offsets import first_not_done, with_done


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    # Nothing connects until the app starts, so an unreachable broker is fine here.
    return Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path))


def _partner_tp(hub: Hub) -> TP:
    return TP(hub.topics.partner(hub.partners[0].id), 0)


def _mark(hub: Hub, tp: TP, ranges: list[list[int]]) -> None:
    hub.marks.data[mark_key("gate", tp.topic, tp.partition)] = ranges


def test_faust_acks_of_records_no_stage_did_are_not_committed_past(hub: Hub) -> None:
    """What lost records after a kill -9: Faust acks a message its stream skipped (flow
    suspended, older generation) and commits a run of acks starting one past the committed
    offset. Faust's own figure here is 15; the stage did only 11..14 and not 10."""
    consumer = hub.app.consumer
    tp = _partner_tp(hub)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp] = [11, 12, 13, 14]
    _mark(hub, tp, [[-1, 9], [11, 14]])
    assert consumer._filter_committable_offsets([tp]) == {}
    assert hub.commits.skipped == {tp}  # the watchdog reads it again at its next look
    _mark(hub, tp, [[-1, 14]])  # the watchdog had 10 read again, and the stage did it
    consumer._acked[tp] = [10]
    hub.commits.skipped.clear()
    assert consumer._filter_committable_offsets([tp]) == {tp: 15}
    assert not hub.commits.skipped  # Faust's figure and the marks agree


def test_offsets_faust_took_for_holes_are_not_committed_past(hub: Hub) -> None:
    """Faust counts the offsets between two messages read further apart than one as holes,
    the later message's own included; after a seek they can be records not yet done."""
    consumer = hub.app.consumer
    tp = _partner_tp(hub)
    consumer._committed_offset[tp] = 20
    consumer._gap[tp].addi(21, 30)
    consumer._acked[tp] = [20, 30]
    _mark(hub, tp, [[-1, 20], [30, 30]])
    assert consumer._filter_committable_offsets([tp]) == {tp: 21}


def test_a_partition_never_committed_waits_for_its_first_offset_on_the_broker(hub: Hub) -> None:
    consumer = hub.app.consumer
    tp = _partner_tp(hub)
    consumer._acked[tp] = [5, 6]
    _mark(hub, tp, [[5, 6]])
    assert consumer._filter_committable_offsets([tp]) == {}  # 0..4 may be records
    hub.commits.log_start[tp] = 0
    assert consumer._filter_committable_offsets([tp]) == {}
    hub.commits.log_start[tp] = 5  # retention deleted them
    assert consumer._filter_committable_offsets([tp]) == {tp: 7}


def test_holes_found_on_the_broker_count_as_done(hub: Hub) -> None:
    consumer = hub.app.consumer
    tp = TP(hub.topics.consent, 1)
    key = mark_key("release", tp.topic, tp.partition)
    hub.marks.data[key] = [[-1, 3], [6, 9]]
    consumer._committed_offset[tp] = 4
    consumer._acked[tp] = [6]
    assert consumer._filter_committable_offsets([tp]) == {}
    hub.commits.holes[tp] = [[4, 5]]
    assert consumer._filter_committable_offsets([tp]) == {tp: 10}


def test_other_topics_keep_fausts_commits(hub: Hub) -> None:
    consumer = hub.app.consumer
    tp = TP("some-other-topic", 0)
    consumer._committed_offset[tp] = 3
    consumer._acked[tp] = [3, 4]
    assert consumer._filter_committable_offsets([tp]) == {tp: 5}


def test_first_not_done_walks_ranges_in_any_order() -> None:
    assert first_not_done([[5, 9], [0, 4], [11, 12]], 0) == 10
    assert first_not_done([[5, 9]], 3) == 3
    assert first_not_done([[0, 20], [5, 30]], 7) == 31


def test_what_lies_below_the_committed_offset_folds_into_one_range() -> None:
    assert with_done([[0, 2], [5, 5], [9, 9]], [12], floor=8) == [[-1, 7], [9, 9], [12, 12]]
    assert with_done([[3, 4]], [7], floor=0) == [[3, 4], [7, 7]]
