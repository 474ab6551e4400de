"""The watchdog that reads a stuck stream partition again (``hub.runtime.watchdog``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from faust.types import TP

from hub.metrics import Metrics
from hub.runtime.watchdog import STRIKES, Watchdog, stuck

STUCK, BUSY, DONE = TP("partner.a.events", 0), TP("partner.a.events", 1), TP("partner.a.events", 2)
CHANGELOG = TP("app-views-changelog", 0)


class FakeConsumer:
    """Faust's consumer as the watchdog reads it: committed offsets, acks, read positions,
    the broker's high watermarks, and seeks."""

    def __init__(self) -> None:
        self._committed_offset: dict[TP, int] = {STUCK: 28, BUSY: 10, DONE: 50, CHANGELOG: 3}
        self._acked: dict[TP, list[int]] = {}
        self._read_offset: dict[TP, int] = {STUCK: 28, BUSY: 12, DONE: 50}
        self.ends = {STUCK: 198, BUSY: 40, DONE: 50, CHANGELOG: 90}
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def watchdog(consumer: Any, stalled: bool = False) -> tuple[Watchdog, list[str]]:
    counted: list[str] = []
    dog = Watchdog(
        consumer,
        lambda tp: "changelog" not in tp.topic,
        lambda: stalled,
        lambda name, labels, n: counted.append(name),
    )
    return dog, counted


def test_a_partition_stuck_at_two_looks_in_a_row_is_read_again_from_its_committed_offset() -> None:
    consumer = FakeConsumer()
    dog, counted = watchdog(consumer)
    looks = [asyncio.run(dog.look()) for _ in range(STRIKES + 1)]
    # The first look has nothing to compare with; then two looks without movement (BUSY
    # has records after it too, and does not move either).
    assert looks == [[], [], [STUCK, BUSY]]
    assert consumer.seeks == [(STUCK, 28), (BUSY, 10)]
    assert counted == ["placehub_partition_rewinds"] * 2


def test_a_partition_that_moves_is_left_alone() -> None:
    consumer = FakeConsumer()
    dog, _ = watchdog(consumer)
    for n in range(4):
        consumer._committed_offset[STUCK] = 28 + n  # committing
        consumer._acked[BUSY] = list(range(n))  # acking
        asyncio.run(dog.look())
    assert consumer.seeks == []  # and DONE has nothing after its committed offset


def test_a_partition_never_committed_is_read_again_from_its_start() -> None:
    consumer = FakeConsumer()
    del consumer._committed_offset[STUCK]
    dog, _ = watchdog(consumer)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert (STUCK, 0) in consumer.seeks


def test_nothing_counts_as_stuck_while_a_stage_is_stalled() -> None:
    consumer = FakeConsumer()
    dog, _ = watchdog(consumer, stalled=True)
    for _ in range(4):
        asyncio.run(dog.look())
    assert consumer.seeks == []


def test_stuck_needs_records_after_the_committed_offset_and_no_movement() -> None:
    same = (28, 0, 28)
    assert stuck(198, 28, same, same)
    assert not stuck(28, 28, same, same)  # nothing after it
    assert not stuck(None, 28, same, same)  # the broker did not say
    assert not stuck(198, 28, None, same)  # first look
    assert not stuck(198, 29, same, (29, 0, 29))  # moved


def test_every_metric_a_stage_or_the_runtime_counts_is_declared() -> None:
    """A stage's count of an undeclared metric failed the batch after its delivery."""
    root = Path(__file__).resolve().parents[2] / "hub"
    sources = [*(root / "stages").glob("*.py"), *(root / "runtime").glob("*.py")]
    counted = {
        name
        for path in sources
        for name in re.findall(r'count\(\s*"(placehub_[a-z_]+)"', path.read_text())
    }
    metrics = Metrics()
    assert counted and all(metrics._by_name.get(name) for name in counted), counted
