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
*stuck* when the broker holds records past its committed offset and neither its committed
offset, its acks nor its read position have moved since the last look, while no stage is
stalled (a stalled stage holds its batch on purpose). Stuck at two looks in a row, it is
sought back to its committed offset (the start, if it never had one; Faust's
``Consumer.seek``, which also resets Faust's read position), and the stages read those
records again. That is safe even if some were still on their way: the stages' marks list
the offsets done (``hub.stages.offsets``), so no record's state is applied twice. Each
rewind is logged and counted in ``placehub_partition_rewinds_total``.

Faust internals relied on (guarded by ``tests/unit/test_runtime_faust.py``): the consumer's
``_committed_offset``, ``_acked`` and ``_read_offset``; the broker's high watermarks come
from ``Consumer.highwaters`` (one request a look).
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


def stuck(highwater: int | None, position: int, before: Progress | None, now: Progress) -> bool:
    """Whether a partition looks stuck: records past ``position`` (its committed offset)
    and no movement since the last look."""
    return highwater is not None and highwater > position and before == now


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
        tps = sorted(t for t in consumer.assignment() if self.is_stream(t))
        highwaters = await consumer.highwaters(*tps) if tps else {}
        rewound = []
        for tp in tps:
            committed = consumer._committed_offset.get(tp)
            now = (committed, len(consumer._acked.get(tp, ())), consumer._read_offset.get(tp))
            before = self._seen.get(tp)
            self._seen[tp] = now
            position = committed if committed is not None else 0
            if not stuck(highwaters.get(tp), position, before, now):
                self._strikes.pop(tp, None)
                continue
            self._strikes[tp] = self._strikes.get(tp, 0) + 1
            if self._strikes[tp] < STRIKES:
                continue
            log.warning(
                "partition %s[%d] stuck at offset %d with records after it: reading it "
                "again from there",
                tp.topic,
                tp.partition,
                position,
            )
            await consumer.seek(tp, position)
            self._strikes.pop(tp, None)
            self.count("placehub_partition_rewinds", (), 1)
            rewound.append(tp)
        return rewound
