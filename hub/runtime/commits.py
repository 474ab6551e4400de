"""How far a stream partition's committed offset may move: to the end of what its stage
has done, as the stage's marks list it, never past a record that was not.

Faust commits a partition up to the offsets its streams acked, and after a ``kill -9``
restart under load that lost records (about one run in twenty of the project's kill -9
tests: a partner's ``received`` short by 17 with nothing in flight). Faust acks records it
never handed to an agent: a stream acks a message it skips because flow control is
suspended or the message is of an older consumer generation, both usual while a restarted
worker recovers its tables. It also counts the offsets between two messages it reads
further apart than one as a compacted topic's holes, including the later message's own
offset, and it commits a run of acks that starts one past the committed offset. Any of
these commits past records no stage has processed, and those are then never read again.

The stages' marks say exactly which offsets of a partition were done
(``hub.stages.offsets``), written last in each batch, so a record in them has all its
effects delivered. ``Commits.position`` gives the first offset at or after the committed
one that is not done; the consumer (``hub.runtime.transport``) commits that instead of
Faust's figure. A record Faust skipped then holds its partition's commits until the
watchdog reads it again (``hub.runtime.watchdog``): a pause, never a loss. Faust's figure
past that position is how a skip shows (``Commits.skipped``), so the watchdog acts at its
next look rather than waiting for the partition to look stuck.

Offsets that hold no record (a compacted topic's holes, a transaction's markers) count as
done once the watchdog has read the partition from the broker and found them missing
(``holes``). A partition never committed starts at the broker's first offset
(``log_start``, which the watchdog keeps; until it is known such a partition is not
committed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from hub.stages import offsets

__all__ = ["Commits", "mark_key"]


def mark_key(stage: str, topic: str, partition: int) -> str:
    """The marks table's key for one stage's input partition."""
    return f"{stage}|{topic}|{partition}"


def as_ranges(mark: Any) -> offsets.Ranges:
    """A stored mark as done ranges (a mark written before ranges is the last offset done)."""
    if mark is None:
        return []
    return [[-1, mark]] if isinstance(mark, int) else mark


@dataclass
class Commits:
    """Where each stream partition may be committed to (module docstring)."""

    marks: Any  # the marks table (Faust), read through its store
    readers: Mapping[str, str]  # stream topic -> the stage that reads it
    log_start: dict[TP, int] = field(default_factory=dict)
    holes: dict[TP, offsets.Ranges] = field(default_factory=dict)
    # Partitions where Faust acked past a record no stage did: the watchdog reads them
    # again at its next look instead of waiting for them to look stuck.
    skipped: set[TP] = field(default_factory=set)

    def covers(self, tp: TP) -> bool:
        """Whether ``tp`` is a stream partition (its commits follow the marks)."""
        return tp.topic in self.readers

    def done(self, tp: TP) -> offsets.Ranges:
        """The offsets of ``tp`` its stage has done, holes found included."""
        key = mark_key(self.readers[tp.topic], tp.topic, tp.partition)
        return [*as_ranges(self.marks.data.get(key)), *self.holes.get(tp, [])]

    def base(self, tp: TP, committed: int | None) -> int | None:
        """Where ``tp`` starts: its committed offset, or the broker's first if that is later
        (or if it never was committed); None while neither is known."""
        start = self.log_start.get(tp)
        if committed is None:
            return start
        return committed if start is None else max(committed, start)

    def behind(self, tp: TP, highwater: int, committed: int | None) -> int:
        """Records of ``tp`` on the broker (up to ``highwater``) past where it starts."""
        return max(highwater - (self.base(tp, committed) or 0), 0)

    def position(self, tp: TP, committed: int | None) -> int | None:
        """The offset ``tp`` may be committed to now, or None if not past ``committed``."""
        return self.commit_to(tp, committed, None)

    def commit_to(self, tp: TP, committed: int | None, acked_to: int | None) -> int | None:
        """``position``, noting ``tp`` as skipped if Faust's own figure (``acked_to``, the
        end of what it acked) is past the first offset not done: Faust acks only what a
        stage finished (its marks written first) or what a stream skipped, or offsets it
        took for holes."""
        base = self.base(tp, committed)
        if base is None:
            return None  # where it starts is not known yet, so neither is a skip
        reached = offsets.first_not_done(self.done(tp), base)
        if acked_to is not None and acked_to > reached:
            self.skipped.add(tp)
        return reached if reached > (base if committed is None else committed) else None
