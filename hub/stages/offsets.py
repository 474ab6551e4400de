"""Which offsets of a partition were done, as a short list of ``[first, last]`` ranges.

Kafka hands a partition's records over in order, but Faust does not always: after a
restart it can drop fetched records and deliver later ones, and the runtime's watchdog
reads the dropped ones again afterwards (``hub.runtime.watchdog``). A single "done up to
here" offset would then skip records that were never done; ranges remember exactly which
were, so a record is done once, whatever order it comes in.

Gaps that never fill (offsets a compacted topic no longer holds) would grow the list, so it
keeps at most ``MAX_RANGES``: past that, the two oldest ranges merge, and their gap, long
behind the partition's committed position, counts as done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["MAX_RANGES", "Ranges", "done", "with_done"]

MAX_RANGES = 32

Ranges = list[list[int]]  # sorted, disjoint, non-adjacent [first, last] pairs


def done(ranges: Sequence[Sequence[int]] | None, offset: int) -> bool:
    """True if ``offset`` is in ``ranges``."""
    return any(first <= offset <= last for first, last in ranges or ())


def with_done(ranges: Sequence[Sequence[int]] | None, offsets: Iterable[int]) -> Ranges:
    """``ranges`` with ``offsets`` added (a new list; ``ranges`` is not changed)."""
    merged: Ranges = []
    for first, last in sorted([*([a, b] for a, b in ranges or ()), *([o, o] for o in offsets)]):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    while len(merged) > MAX_RANGES:
        merged[0:2] = [[merged[0][0], merged[1][1]]]
    return merged
