"""Which offsets of a partition were done, as a short list of ``[first, last]`` ranges.

Kafka hands a partition's records over in order, but Faust does not always: after a
restart it can drop fetched records and deliver later ones, and the runtime's watchdog
reads the dropped ones again afterwards (``hub.runtime.watchdog``). A single "done up to
here" offset would then skip records that were never done; ranges remember exactly which
were, so a record is done once, whatever order it comes in, and the partition is committed
only up to the first offset not done (``hub.runtime.commits``).

Everything below the partition's committed offset is done (it is never read again), so
those ranges fold into one (``floor``). Gaps above it (records on their way again, or a
compacted topic's holes not yet found) would grow the list, so it keeps at most
``MAX_RANGES``: past that, the two oldest ranges merge and their gap counts as done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["MAX_RANGES", "Ranges", "done", "first_not_done", "with_done"]

MAX_RANGES = 256

Ranges = list[list[int]]  # sorted, disjoint, non-adjacent [first, last] pairs


def done(ranges: Sequence[Sequence[int]] | None, offset: int) -> bool:
    """True if ``offset`` is in ``ranges``."""
    return any(first <= offset <= last for first, last in ranges or ())


def with_done(
    ranges: Sequence[Sequence[int]] | None, offsets: Iterable[int], floor: int | None = None
) -> Ranges:
    """``ranges`` with ``offsets`` added (a new list; ``ranges`` is not changed), and every
    offset below ``floor`` (the committed offset) counted as done."""
    added = [*([a, b] for a, b in ranges or ()), *([o, o] for o in offsets)]
    if floor:
        added.append([-1, floor - 1])
    merged: Ranges = []
    for first, last in sorted(added):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    while len(merged) > MAX_RANGES:
        merged[0:2] = [[merged[0][0], merged[1][1]]]
    return merged


def first_not_done(ranges: Sequence[Sequence[int]], start: int) -> int:
    """The first offset at or after ``start`` that is in none of ``ranges`` (in any order,
    overlapping or not)."""
    position = start
    for first, last in sorted((a, b) for a, b in ranges):
        if first > position:
            break
        position = max(position, last + 1)
    return position
