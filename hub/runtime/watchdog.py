"""A watchdog for stream partitions whose records stop reaching the stages.

After a ``kill -9`` restart under load, about one restart in five in the project's tests,
a stream partition's records stopped reaching the stages: the consumer had read them
(aiokafka's position was at the partition's end) but Faust never handed them to the agent,
so they were never acked, that partition's commits stopped at the first of them, and
everything after sat in flight until the next restart. Faust has several places that drop
a fetched message without acking it and count on a later seek to read it again (its
recovery resumes stream partitions before seeking them to their committed offsets, a
stream skips a message of an older generation, the consumer drops what arrives while its
flow is suspended); which of them struck here was not pinned down, and reordering the
recovery's resume and seek made it worse.

The consumer commits a stream partition only up to the first offset its stage has not done
(``hub.runtime.commits``), so such a record holds its partition's commits. Every
``interval`` the watchdog looks at each stream partition this worker owns. One is *stuck*
when the broker holds records past where it may be committed (``Commits.base``) and its
committed offset has not moved since the last look, while its own stage is not stalled (a
stalled stage holds its batch on purpose; the other stages' partitions are still watched,
since one stage retrying a delivery for minutes must not leave another stage's records
unread; a partition that waited on purpose, its stage stalled or the gate paused, is looked
at as new once it reads again: its commits standing still meanwhile say nothing). Stuck at
two looks in a row, and with records past that point already handed to Faust (aiokafka's
position is past it: what waits in the fetcher behind other partitions' records, as in a
bulk load, is not lost, and rewinding it only sent it to the back of the queue again), it is
sought back there (Faust's ``Consumer.seek_wait``, which also resets Faust's read position),
and the stages read those records again. That is safe even if some were still on their way:
the stages' marks list the offsets done, so no record's state is applied twice. Each rewind
is logged and counted in ``placehub_partition_rewinds_total``. Each look also sets each
stage's consumer lag (``placehub_consumer_lag_records``: high watermark minus where the
partition starts, summed per stage), stalled or not, since those offsets are read anyway,
and from the same offsets pauses or resumes the gate by the consent backlog
(``hub.runtime.flow``); a paused partition is not stuck.

The offset a partition stops at may hold no record: a compacted topic's holes (the consent
topic), or the markers a transactional producer leaves after each transaction (a partner
whose system writes in transactions). So before a rewind the watchdog reads from the broker
which offsets hold records, from that point to the partition's end or its first record not
done (``present_on``); the missing ones count as done (``Commits.holes``), and only if the
partition stops at a record is it read again. Each look also refreshes each partition's
first offset on the broker (``Commits.log_start``), where a partition never committed
starts.

Faust internals relied on (guarded by ``tests/unit/test_runtime_faust.py``): the consumer's
``_committed_offset``; the broker's offsets come from ``Consumer.highwaters`` and
``Consumer.earliest_offsets`` (one request each a look), what was handed to Faust from
``Consumer.position``; a rewind is ``Consumer.seek_wait``,
which Faust runs on the consumer's thread and which resets its read position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from faust.types import TP
from kafka import KafkaConsumer, TopicPartition

from hub.config import Settings
from hub.kafka_clients import kafka_python_options
from hub.runtime.commits import Commits
from hub.runtime.flow import ConsentsFirst
from hub.stages.offsets import Ranges, first_not_done
from hub.stages.offsets import done as is_done

__all__ = ["STRIKES", "Watchdog", "holes", "lag_by_stage", "present_on", "stuck"]

log = logging.getLogger(__name__)

STRIKES = 2  # looks in a row a partition must be stuck at before it is sought back

READ_TIMEOUT_S = 60  # the longest a read for holes may take

# The offsets the broker holds for a partition from ``start``, up to ``end`` or to the
# first that is not in the done ranges, whichever comes first (``present_on``).
FindPresent = Callable[[TP, int, int, Ranges], Awaitable[list[int]]]


def present_on(settings: Settings) -> FindPresent:
    """Reads which offsets the broker holds, with a consumer of its own in a thread."""

    async def find(tp: TP, start: int, end: int, done: Ranges) -> list[int]:
        return await asyncio.to_thread(_present, settings, tp, start, end, done)

    return find


def _present(settings: Settings, tp: TP, start: int, end: int, done: Ranges) -> list[int]:
    partition = TopicPartition(tp.topic, tp.partition)
    consumer = KafkaConsumer(
        **kafka_python_options(settings), group_id=None, enable_auto_commit=False
    )
    found: list[int] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        consumer.assign([partition])
        consumer.seek(partition, start)
        while consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {tp.topic}[{tp.partition}] for holes")
            for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                for record in records:
                    if record.offset >= end:
                        return found
                    found.append(record.offset)
                    if not is_done(done, record.offset):
                        return found
    finally:
        consumer.close()
    return found


def stuck(highwater: int | None, position: int, before: int | None, now: int | None) -> bool:
    """Whether a partition looks stuck: records past ``position`` (where it may be
    committed) and its committed offset where it was at the last look."""
    return highwater is not None and highwater > position and before == now


def holes(present: Sequence[int], start: int, end: int) -> Ranges:
    """The offsets in ``[start, end)`` that are not in ``present``, as ranges."""
    spans: Ranges = []
    expected = start
    for offset in sorted(o for o in present if start <= o < end):
        if offset > expected:
            spans.append([expected, offset - 1])
        expected = offset + 1
    if expected < end:
        spans.append([expected, end - 1])
    return spans


def lag_by_stage(
    commits: Commits, highwaters: Mapping[TP, int], committed: Mapping[TP, int]
) -> dict[str, int]:
    """Records past where each stage's partitions (of ``highwaters``) start, summed per
    stage; every stage is named, at 0 where this worker owns none of its partitions."""
    lag = dict.fromkeys(commits.readers.values(), 0)
    for tp, highwater in highwaters.items():
        lag[commits.readers[tp.topic]] += commits.behind(tp, highwater, committed.get(tp))
    return lag


@dataclass
class Watchdog:
    """Looks for stuck stream partitions and seeks them back (module docstring)."""

    consumer: Any  # Faust's consumer
    commits: Commits
    stalled: Callable[[], Collection[str]]  # stages holding a batch: theirs are not stuck
    count: Callable[[str, tuple[str, ...], int], None]
    find_present: FindPresent | None = None  # which offsets hold records (holes)
    lag: Callable[[dict[str, int]], None] | None = None  # each stage's lag (a gauge)
    flow: ConsentsFirst | None = None  # pauses the gate while consents are far behind
    _seen: dict[TP, int | None] = field(default_factory=dict)
    _strikes: dict[TP, int] = field(default_factory=dict)

    async def look(self) -> list[TP]:
        """One look at every stream partition; the ones sought back."""
        consumer, commits = self.consumer, self.commits
        tps = sorted(t for t in consumer.assignment() if commits.covers(t))
        if tps:
            commits.log_start.update(await consumer.earliest_offsets(*tps))
        highwaters = await consumer.highwaters(*tps) if tps else {}
        if self.lag is not None:
            self.lag(lag_by_stage(commits, highwaters, consumer._committed_offset))
        if self.flow is not None:
            self.flow.look(highwaters, consumer._committed_offset)
        held = set(self.stalled())
        rewound = []
        for tp in tps:
            if commits.readers[tp.topic] in held or (self.flow and self.flow.holds(tp)):
                # Waiting on purpose: once it reads again, it is looked at as if new.
                self._strikes.pop(tp, None)
                self._seen.pop(tp, None)
                continue
            committed = consumer._committed_offset.get(tp)
            first_look = tp not in self._seen
            before, self._seen[tp] = self._seen.get(tp), committed
            base = commits.base(tp, committed)
            position = base if base is not None else 0
            highwater = highwaters.get(tp)
            if tp in commits.skipped:  # Faust acked past a record no stage did: act now
                commits.skipped.discard(tp)
                self._strikes.pop(tp, None)
                if highwater is None or highwater <= position:
                    continue
            elif first_look or not stuck(highwater, position, before, committed):
                self._strikes.pop(tp, None)
                continue
            else:
                self._strikes[tp] = self._strikes.get(tp, 0) + 1
                if self._strikes[tp] < STRIKES:
                    continue
                self._strikes.pop(tp, None)
                if not await self._handed_past(tp, position):
                    continue  # waiting its turn in the fetcher: nothing to read again
            if await self._only_holes(tp, position, cast(int, highwater)):
                continue
            log.warning(
                "partition %s[%d] stuck at offset %d with records after it: reading it "
                "again from there",
                tp.topic,
                tp.partition,
                position,
            )
            # On the consumer's own thread: Faust's ``seek`` calls aiokafka from this one,
            # and its fetcher, iterating what it has fetched on the other, then met a
            # partition the seek had just dropped (KeyError) and crashed, and the worker
            # read nothing more (seen in the scale bench).
            await consumer.seek_wait({tp: position})
            self.count("placehub_partition_rewinds", (), 1)
            rewound.append(tp)
        return rewound

    async def _handed_past(self, tp: TP, position: int) -> bool:
        """Whether the consumer has handed Faust records of ``tp`` from ``position`` on
        (aiokafka's position is past it): only those can have been lost. A partition whose
        fetched records wait behind other partitions' (a bulk load's backlog) has not, and
        reading it again would only send it to the back of the queue."""
        try:
            handed = await self.consumer.position(tp)
        except Exception as exc:  # e.g. no longer assigned: look again next time
            log.warning("reading %s[%d]'s position failed: %r", tp.topic, tp.partition, exc)
            return False
        return handed is None or handed > position

    async def _only_holes(self, tp: TP, position: int, end: int) -> bool:
        """Whether ``tp`` is stuck only at offsets that hold no record (before ``end``, its
        high watermark, and before its first record not done): those are then counted
        done, and its commits move on."""
        if self.find_present is None:
            return False
        done = self.commits.done(tp)
        try:
            present = await self.find_present(tp, position, end, done)
        except Exception as exc:  # the broker did not answer: read the partition again
            log.warning("reading %s[%d] for holes failed: %r", tp.topic, tp.partition, exc)
            return False
        if present and not is_done(done, present[-1]):
            end = present[-1]  # a record not done: what lies after it is not known yet
        found = holes(present, position, end)
        self.commits.holes[tp] = found
        if first_not_done([*done, *found], position) == position:
            return False  # a record there is not done
        if found:
            log.info(
                "partition %s[%d]: %d offsets from %d hold no record; counted as done",
                tp.topic,
                tp.partition,
                sum(last - first + 1 for first, last in found),
                position,
            )
        return True  # done since it looked stuck, or done but for holes
