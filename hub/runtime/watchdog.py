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

So every ``interval`` the watchdog looks at each stream partition this worker owns. One is
*stuck* when the broker holds records past its committed offset, none of them is on its
way through the stages (Faust tracks every message handed to a stream until it is acked),
and its committed offset, acks and read position have not moved since the last look, while
no stage is stalled (a stalled stage holds its batch on purpose). Stuck at two looks in a
row, it is sought back to its committed offset (Faust's ``Consumer.seek``, which also
resets Faust's read position), and the stages read those records again; their marks keep
any record whose state already landed from being applied twice. Each rewind is logged and
counted in ``placehub_partition_rewinds_total``.

Faust internals relied on (guarded by ``tests/unit/test_runtime_faust.py``): the consumer's
``_committed_offset``, ``_acked``, ``_read_offset`` and ``_unacked_messages``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

__all__ = ["STRIKES", "Watchdog", "stuck"]

log = logging.getLogger(__name__)

STRIKES = 2  # looks in a row a partition must be stuck at before it is sought back

Progress = tuple[int | None, int, int | None]  # committed, acks pending, read position


def stuck(
    committed: int | None,
    highwater: int | None,
    in_flight: bool,
    before: Progress | None,
    now: Progress,
) -> bool:
    """Whether a partition looks stuck: records past its committed offset, none of them
    on the way, and no movement since the last look."""
    if committed is None or highwater is None or highwater <= committed or in_flight:
        return False
    return before == now


@dataclass
class Watchdog:
    """Looks for stuck stream partitions and seeks them back (module docstring)."""

    consumer: Any  # Faust's consumer
    is_stream: Callable[[TP], bool]
    stalled: Callable[[], bool]  # a stage is holding a batch: nothing counts as stuck
    count: Callable[[str, tuple[str, ...], int], None]
    _seen: dict[TP, Progress] = field(default_factory=dict)
    _strikes: dict[TP, int] = field(default_factory=dict)

    async def look(self) -> list[TP]:
        """One look at every stream partition; the ones sought back."""
        consumer = self.consumer
        if self.stalled():
            self._strikes.clear()
            return []
        flowing = {m.tp for m in list(consumer._unacked_messages)}
        rewound = []
        for tp in sorted(t for t in consumer.assignment() if self.is_stream(t)):
            committed = consumer._committed_offset.get(tp)
            now = (committed, len(consumer._acked.get(tp, ())), consumer._read_offset.get(tp))
            before = self._seen.get(tp)
            self._seen[tp] = now
            highwater = consumer.highwater(tp)
            if not stuck(committed, highwater, tp in flowing, before, now):
                self._strikes.pop(tp, None)
                continue
            self._strikes[tp] = self._strikes.get(tp, 0) + 1
            if self._strikes[tp] < STRIKES:
                continue
            assert committed is not None
            log.warning(
                "partition %s[%d] stuck at offset %d with records after it: reading it "
                "again from there",
                tp.topic,
                tp.partition,
                committed,
            )
            await consumer.seek(tp, committed)
            self._strikes.pop(tp, None)
            self.count("placehub_partition_rewinds", (), 1)
            rewound.append(tp)
        return rewound
