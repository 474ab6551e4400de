"""Patterns, first half: which cells each person is counted in, as their timeline changes.

The view sends every changed person's timeline (codes and dates; no tokens) on the
internal patterns topic, on the person's partition, whether or not the place has alert
rules. This stage keeps, in the ``pattern-people`` table, each person's cells in the
windows still open (``hub.stages.pattern_windows``). For each timeline it works out the
person's cells again and sends what changed, +1 or -1 a cell, on the internal deltas topic
keyed by window, so one partition of the next stage (``hub.stages.patterns``) holds all of
a window's cells. A person whose events went (withdrawn, expired, erased, moved to another
person by a split or merge) so leaves the counts of every open window; closed windows are
final.

Event time and lateness: each input partition keeps a watermark, the latest event time seen
on it (Faust's stream time; an event dated in the future moves it only up to now). A
window is closed once the watermark is past its end plus the grace period
(``Settings.patterns_grace_days``). An event that arrived (the view marks the entries a
partner's record added in the batch, not those a merge or split moved) for a window that
had closed is not counted in it: it adds one to that window's ``late_events`` cell instead.

Each delta carries the offset of the input record it came from, so the next stage applies
it once even if a crash makes this stage send it again (``PatternsStage``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from hub import batch
from hub.batch import Op
from hub.stages.context import Context
from hub.stages.effects import Effects, Output, Pending, Record, Refused, State, run_each
from hub.stages.hops import each_item
from hub.stages.pattern_windows import LATE, Seen, Window, person_cells, windows_of

__all__ = ["Delta", "PatternPeopleStage", "watermark_key"]

TABLE = "pattern-people"
LATE_METRIC = "placehub_pattern_late_events"  # counted per granularity, as it is published

# (window id, source partition, source offset, cell, +n or -n)
Delta = tuple[str, int, int, str, int]


def watermark_key(partition: int) -> bytes:
    """The table key of an input partition's watermark (no person id starts with '~')."""
    return f"~watermark/{partition}".encode()


class PatternPeopleStage:
    """Keeps each person's cells in open windows and sends their changes (module docstring)."""

    name = "patterns-people"
    tables: tuple[str, ...] = (TABLE,)
    writes: tuple[tuple[str, ...], ...] = ((TABLE,),)  # after the deltas it records

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply each timeline in ``records``, in order per person."""
        effects = Effects()
        deltas = Pending()
        state.extras.append(deltas)

        def one(record: Record) -> None:
            def handle(item: batch.Item) -> None:
                if item.op is not Op.TIMELINE:
                    raise Refused(f"the patterns stage has no operation {item.op!r}")
                entries = list(orjson.loads(item.raw or b"[]"))
                self._person(record, item.key, entries, state, deltas, now)

            def refused(item: batch.Item, reason: str) -> None:
                effects.dead_letter(record, self.name, reason, now)

            each_item(self.name, record, state, effects, handle, refused)

        run_each(self.name, records, state, effects, now, one)
        for window_id, _, _, cell, n in deltas:
            if cell == LATE:
                effects.count(LATE_METRIC, Window.parse(window_id).granularity, n=n)
        effects.outputs += self._outputs(deltas)
        return effects

    def _person(
        self,
        record: Record,
        person_id: str,
        raw: list[dict[str, Any]],
        state: State,
        deltas: list[Delta],
        now: datetime,
    ) -> None:
        table, grace = state[TABLE], self.ctx.patterns_grace
        mark_key = watermark_key(record.partition)
        mark = table.get(mark_key)
        watermark = datetime.fromisoformat(mark["at"]) if mark else None
        entries = [Seen.of(e) for e in raw]
        key = person_id.encode()
        row = table.get(key) or {"cells": {}}
        where = (record.partition, record.offset)

        open_: dict[str, Window] = {}
        for entry, fields in zip(entries, raw, strict=True):
            for window in windows_of(entry.occurred_at):
                if not window.closed(watermark, grace):
                    open_[window.id] = window
                elif fields.get("arrived"):
                    deltas.append((window.id, *where, LATE, 1))
        for window_id in row["cells"]:
            window = Window.parse(window_id)
            if not window.closed(watermark, grace):
                open_[window_id] = window

        cells: dict[str, list[str]] = {}
        for window_id, window in open_.items():
            now_in = person_cells(entries, window, self.ctx.flows_within)
            before = set(row["cells"].get(window_id, []))
            deltas += [(window_id, *where, cell, 1) for cell in sorted(now_in - before)]
            deltas += [(window_id, *where, cell, -1) for cell in sorted(before - now_in)]
            if now_in:
                cells[window_id] = sorted(now_in)

        state.at(batch.partition_for(key, self.ctx.partitions))
        if entries:
            table[key] = {"cells": cells}
        else:
            table.pop(key, None)
        latest = min(max((e.occurred_at for e in entries), default=now), now)
        if entries and (watermark is None or latest > watermark):
            state.at(record.partition)
            table[mark_key] = {"at": latest.isoformat()}

    def _outputs(self, deltas: Iterable[Delta]) -> list[Output]:
        """One record per window and source partition: the changes of each input record,
        by its offset, in order."""
        grouped: dict[tuple[str, int], dict[int, dict[str, int]]] = defaultdict(dict)
        for window_id, partition, offset, cell, n in deltas:
            changes = grouped[window_id, partition].setdefault(offset, {})
            changes[cell] = changes.get(cell, 0) + n
        outputs = []
        for (window_id, partition), by_offset in grouped.items():
            parts = [
                [offset, {c: n for c, n in changes.items() if n}]
                for offset, changes in sorted(by_offset.items())
                if any(changes.values())
            ]
            if not parts:
                continue
            key = window_id.encode()
            value = orjson.dumps({"source": partition, "parts": parts})
            target = batch.partition_for(key, self.ctx.partitions)
            outputs.append(Output(self.ctx.internal.pattern_deltas, target, key, value))
        return outputs
