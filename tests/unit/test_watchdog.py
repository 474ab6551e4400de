"""The watchdog that reads a stuck stream partition again (``hub.runtime.watchdog``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from faust.types import TP

from hub.metrics import Metrics
from hub.runtime.commits import Commits
from hub.runtime.watchdog import STRIKES, Watchdog, holes, stuck
from hub.stages.offsets import done as is_done

STUCK, BUSY, DONE = TP("partner.a.events", 0), TP("partner.a.events", 1), TP("partner.a.events", 2)
VIEW = TP("app-view", 0)
CHANGELOG = TP("app-views-changelog", 0)
READERS = {"partner.a.events": "gate", "app-view": "view"}


class FakeConsumer:
    """Faust's consumer as the watchdog reads it: committed offsets, the broker's first
    offsets and high watermarks, and seeks."""

    def __init__(self) -> None:
        self._committed_offset: dict[TP, int] = {STUCK: 28, BUSY: 10, DONE: 50, CHANGELOG: 3}
        self.starts = {STUCK: 0, BUSY: 0, DONE: 0, CHANGELOG: 0}
        self.ends = {STUCK: 198, BUSY: 40, DONE: 50, CHANGELOG: 90}
        # Where aiokafka has handed records to Faust up to: everything fetched, unless set.
        self.handed: dict[TP, int | None] = {}
        self.unassigned: set[TP] = set()
        self.seeks: list[tuple[TP, int]] = []
        self.seeks_from_this_thread: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.starts[tp] for tp in tps}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: TP) -> int | None:
        if tp in self.unassigned:
            raise RuntimeError("not assigned")  # aiokafka's IllegalStateError, say
        return self.handed.get(tp, self.ends[tp])

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        """Faust runs this on the consumer's own thread."""
        self.seeks += partitions.items()

    async def seek(self, tp: TP, offset: int) -> None:
        """Faust runs aiokafka's seek on the caller's thread, racing the fetcher."""
        self.seeks_from_this_thread.append((tp, offset))


class FakeMarks:
    """The marks table as ``Commits`` reads it (its store)."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data or {}


def watchdog(
    consumer: Any,
    stalled: tuple[str, ...] = (),
    marks: FakeMarks | None = None,
    present: Any = None,
) -> tuple[Watchdog, list[str]]:
    counted: list[str] = []
    commits = Commits(marks or FakeMarks(), READERS)
    dog = Watchdog(
        consumer,
        commits,
        lambda: stalled,
        lambda name, labels, n: counted.append(name),
        present,
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


def test_a_partition_whose_records_wait_in_the_fetcher_is_not_read_again() -> None:
    """A bulk load's backlog: the consumer has handed Faust nothing of STUCK past where it
    is committed (its fetched records wait behind other partitions'), so none was lost;
    a rewind would drop what was fetched and send the partition to the back again."""
    consumer = FakeConsumer()
    consumer.handed[STUCK] = 28
    dog, counted = watchdog(consumer)
    looks = [asyncio.run(dog.look()) for _ in range(3 * STRIKES + 1)]
    assert STUCK not in {tp for look in looks for tp in look}
    assert (BUSY, 10) in consumer.seeks  # handed past its commits and not done: read again
    consumer.handed[STUCK] = 29  # one record handed over and never done: lost
    for _ in range(STRIKES):
        asyncio.run(dog.look())
    assert (STUCK, 28) in consumer.seeks
    assert counted.count("placehub_partition_rewinds") == len(consumer.seeks)
    consumer.unassigned.add(STUCK)  # its position cannot be read: not read again this time
    seeks = len(consumer.seeks)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert (STUCK, 28) not in consumer.seeks[seeks:]


def test_a_partition_that_commits_is_left_alone() -> None:
    consumer = FakeConsumer()
    dog, _ = watchdog(consumer)
    for _ in range(4):
        consumer._committed_offset[STUCK] += 1
        consumer._committed_offset[BUSY] += 1
        asyncio.run(dog.look())
    assert consumer.seeks == []  # and DONE has nothing after its committed offset


def test_a_partition_never_committed_is_read_again_from_the_brokers_first_offset() -> None:
    consumer = FakeConsumer()
    del consumer._committed_offset[STUCK]
    consumer.starts[STUCK] = 7  # retention has deleted what came before
    dog, _ = watchdog(consumer)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert (STUCK, 7) in consumer.seeks
    assert dog.commits.log_start[STUCK] == 7


def test_a_partition_faust_skipped_in_is_read_again_at_the_next_look() -> None:
    consumer = FakeConsumer()
    dog, counted = watchdog(consumer)
    dog.commits.skipped.update({STUCK, DONE})
    assert asyncio.run(dog.look()) == [STUCK]  # the first look; DONE has nothing after it
    assert consumer.seeks == [(STUCK, 28)] and not dog.commits.skipped
    assert counted == ["placehub_partition_rewinds"]


def test_nothing_of_a_stalled_stage_counts_as_stuck() -> None:
    consumer = FakeConsumer()
    dog, _ = watchdog(consumer, stalled=("gate",))
    for _ in range(4):
        asyncio.run(dog.look())
    assert consumer.seeks == []


def test_a_stage_stalled_does_not_keep_another_stages_stuck_partition_unread() -> None:
    """One stage retrying a delivery (stalled) held every partition of every stage before:
    the gate's records that Faust never handed over sat unread, and the books stayed short
    (received 589 of 658, nothing in flight, in a CI run after a kill -9)."""
    consumer = FakeConsumer()
    consumer._committed_offset[VIEW], consumer.starts[VIEW], consumer.ends[VIEW] = 5, 0, 30
    dog, _ = watchdog(consumer, stalled=("view",))
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert consumer.seeks == [(STUCK, 28), (BUSY, 10)]  # the gate's; the view's is held


def test_stuck_needs_records_after_the_committed_offset_and_no_movement() -> None:
    assert stuck(198, 28, 28, 28)
    assert not stuck(28, 28, 28, 28)  # nothing after it
    assert not stuck(None, 28, 28, 28)  # the broker did not say
    assert not stuck(198, 29, 28, 29)  # moved


def broker(missing: set[int]) -> tuple[Any, list[tuple[int, int]]]:
    """``present_on`` over a partition holding every offset but ``missing``."""
    asked: list[tuple[int, int]] = []

    async def present(tp: TP, start: int, end: int, done: Any) -> list[int]:
        asked.append((start, end))
        found = []
        for offset in range(start, end):
            if offset not in missing:
                found.append(offset)
                if not is_done(done, offset):
                    break
        return found

    return present, asked


def test_a_partition_stuck_only_at_holes_counts_them_done_and_is_not_rewound() -> None:
    consumer = FakeConsumer()
    # Done: 30..60; offsets 28, 29 and 45 hold no record (compacted away, or a transaction's
    # markers); 61 is a record not done yet, on its way.
    marks = FakeMarks({"gate|partner.a.events|0": [[30, 60]]})
    present, asked = broker({28, 29, 45})
    dog, counted = watchdog(consumer, marks=marks, present=present)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert (STUCK, 28) not in consumer.seeks and asked[0] == (28, 198)
    assert "placehub_partition_rewinds" in counted  # BUSY, whose offsets all hold records
    assert dog.commits.holes[STUCK] == [[28, 29], [45, 45]]  # read up to 61, not beyond
    assert dog.commits.position(STUCK, 28) == 61


def test_a_partition_stuck_at_a_record_not_done_is_rewound() -> None:
    consumer = FakeConsumer()
    marks = FakeMarks({"gate|partner.a.events|0": [[30, 60]]})
    present, _ = broker(set())  # 28 and 29 are records, not done
    dog, _ = watchdog(consumer, marks=marks, present=present)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert (STUCK, 28) in consumer.seeks


def test_holes_are_the_offsets_the_broker_does_not_hold() -> None:
    assert holes([3, 4, 7, 9], 2, 11) == [[2, 2], [5, 6], [8, 8], [10, 10]]
    assert holes([], 5, 8) == [[5, 7]]
    assert holes([5, 6, 7], 5, 8) == []


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


def test_a_rewind_seeks_on_the_consumers_own_thread() -> None:
    """Faust's ``Consumer.seek`` calls aiokafka's from the caller's thread, while the
    consumer's thread may be going through what its fetcher fetched: the scale bench's
    worker crashed there (KeyError in ``Fetcher.fetched_records``) and read nothing more.
    ``seek_wait`` runs on the consumer's thread."""
    consumer = FakeConsumer()
    dog, _ = watchdog(consumer)
    for _ in range(STRIKES + 1):
        asyncio.run(dog.look())
    assert consumer.seeks == [(STUCK, 28), (BUSY, 10)]
    assert consumer.seeks_from_this_thread == []
