"""Patterns, second half: each window's true counts, and what of them may be published.

Reads the deltas ``hub.stages.pattern_people`` sends, keyed by window, so one partition
holds every cell of a window. The ``pattern-counts`` table keeps, per window, the true
count of each cell (``measure|area|combination``, ``hub.stages.pattern_windows``), the
last input offset applied from each source partition (a delta sent again after a crash is
applied once), and the value last published for each cell.

After a batch, each window it changed goes through disclosure control as a whole
(``hub.disclosure.control``: every cell with its place total as margins), and each cell
whose published value changed goes to ``hub.patterns`` (compacted, keyed
``window|measure|area|combination``), a tombstone for one that went. True counts never
leave this stage, and a cell is sent only when what a reader sees of it changes.

The median days from a referral to its first contact (``hub.stages.pattern_flows``) is
not a count: the people's ``referral_days`` cells (``A>B=d``) stay in the true counts and
are never published; from them each pair's ``median_days`` cell is made, its count the
referrals behind it, which goes through control like any cell, and its median is
published (kept in the row's ``medians``) only beside a published count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import orjson

from hub import batch
from hub.disclosure import RULE, control
from hub.models import PatternCell
from hub.stages.context import Context
from hub.stages.effects import Effects, Output, Record, Refused, State, run_each
from hub.stages.pattern_flows import DAYS, MEDIAN, MEDIAN_RULE, medians
from hub.stages.pattern_windows import NO_AREA, Window, cell_key, split_cell

__all__ = ["PatternsStage", "margins_of", "median_days", "pattern_cell", "publishable"]

TABLE = "pattern-counts"


class PatternsStage:
    """Keeps each window's true counts and publishes them controlled (module docstring)."""

    name = "patterns"
    tables: tuple[str, ...] = (TABLE,)
    writes: tuple[tuple[str, ...], ...] = ((TABLE,),)  # after the cells they record

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply the batch's deltas, then publish what changed of each window it touched."""
        effects = Effects()
        table = state[TABLE]
        touched: set[bytes] = set()

        def one(record: Record) -> None:
            if record.key is None:
                raise Refused("a pattern delta has no window key")
            Window.parse(record.key.decode())
            body = orjson.loads(record.value or b"")
            source = str(body["source"])
            row = table.get(record.key) or {"counts": {}, "applied": {}, "published": {}}
            counts, applied = dict(row["counts"]), dict(row["applied"])
            for offset, changes in body["parts"]:
                if offset <= applied.get(source, -1):
                    continue  # sent again after a crash: applied before
                for cell, n in changes.items():
                    counts[cell] = counts.get(cell, 0) + n
                    if counts[cell] < 0:
                        raise Refused("a pattern delta takes a count below zero")
                applied[source] = offset
            table[record.key] = row | {
                "counts": {c: n for c, n in counts.items() if n},
                "applied": applied,
            }
            touched.add(record.key)

        run_each(self.name, records, state, effects, now, one)
        for key in sorted(touched):
            state.at(batch.partition_for(key, self.ctx.partitions))
            row = table[key]
            published = publishable(row["counts"])
            shown = median_days(row["counts"], published)
            before = row["published"], row.get("medians", {})
            effects.outputs += self._changes(key.decode(), before, (published, shown))
            table[key] = row | {"published": published, "medians": shown}
        return effects

    def _changes(
        self,
        window_id: str,
        before: tuple[dict[str, int | None], dict[str, int]],
        after: tuple[dict[str, int | None], dict[str, int]],
    ) -> list[Output]:
        """The records that take ``hub.patterns`` from ``before`` to ``after`` for a window
        (each the published counts and medians)."""
        window = Window.parse(window_id)
        topic = self.ctx.topics.patterns
        outputs = []
        (was, was_median), (now, now_median) = before, after
        for cell in sorted(was.keys() | now.keys()):
            if (cell in was and cell in now and was[cell] == now[cell]) and (
                was_median.get(cell) == now_median.get(cell)
            ):
                continue
            key = f"{window_id}|{cell}".encode()
            value = None
            if cell in now:
                pattern = pattern_cell(window, cell, now[cell], now_median.get(cell))
                value = self.ctx.serde.encode(pattern, f"{topic}-value")
            partition = batch.partition_for(key, self.ctx.partitions)
            outputs.append(Output(topic, partition, key, value))
        return outputs


def margins_of(counts: dict[str, int]) -> list[tuple[str, list[str]]]:
    """Each place total with its area members (people with no area among them): a total
    is its members' sum, since a person counts in one area of a window. Members are in
    area code order, no area first (it decides a tie for the second suppression)."""
    members: dict[str, list[str]] = defaultdict(list)
    for cell in sorted(counts):
        measure, area, combination = split_cell(cell)
        if area is not None:
            members[cell_key(measure, None, combination)].append(cell)
    return list(members.items())


def _medians_of(counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Each pair's ``median_days`` cell: the referrals behind it and their median."""
    days = {split_cell(c)[2]: n for c, n in counts.items() if split_cell(c)[0] == DAYS}
    return {cell_key(MEDIAN, None, pair): found for pair, found in medians(days).items()}


# Everyone seen in an area's window is either new or returning, and seen by one service
# or several: two pairs adding up to the same total. A hidden cell of that total (never
# published) is their margin, so a suppressed ``one`` cannot be had as new + returning -
# several.
SEEN = "seen"
_SAME_TOTAL = (("new_or_returning", ("new", "returning")), ("services", ("one", "several")))


def _seen_margins(shown: dict[str, int]) -> list[tuple[str, list[str]]]:
    """Add each area's hidden ``seen`` total to ``shown``; its margins over the pairs."""
    margins = []
    for cell in [c for c in shown if c.startswith("new_or_returning|")]:
        area = split_cell(cell)[1]
        total = cell_key(SEEN, area, "all")
        if total in shown:
            continue
        pairs = [
            [cell_key(measure, area, part) for part in parts] for measure, parts in _SAME_TOTAL
        ]
        shown[total] = sum(shown.get(c, 0) for c in pairs[0])
        for members in ([c for c in cells if c in shown] for cells in pairs):
            if sum(shown[c] for c in members) >= shown[total]:  # else not a margin of it
                margins.append((total, members))
    return margins


def publishable(counts: dict[str, int]) -> dict[str, int | None]:
    """A window's cells as they may be published (None: suppressed); the unpublished
    no-area members, hidden ``seen`` totals, days to a first contact and empty cells left
    out, each pair's ``median_days`` cell (the referrals behind it) put in."""
    shown = {c: n for c, n in counts.items() if split_cell(c)[0] != DAYS}
    shown |= {cell: n for cell, (n, _) in _medians_of(counts).items()}
    seen = _seen_margins(shown)
    controlled = control(shown, [*margins_of(shown), *seen])
    return {
        c: v
        for c, v in controlled.items()
        if split_cell(c)[1] != NO_AREA and split_cell(c)[0] != SEEN
    }


def median_days(counts: dict[str, int], published: dict[str, int | None]) -> dict[str, int]:
    """The median of each ``median_days`` cell whose count ``published`` shows (a
    suppressed one has none)."""
    found = _medians_of(counts)
    return {c: days for c, (_, days) in found.items() if published.get(c) is not None}


def pattern_cell(
    window: Window, cell: str, count: int | None, days: int | None = None
) -> PatternCell:
    """The contract record of one published cell (``days``: a median cell's median)."""
    measure, area, combination = split_cell(cell)
    return PatternCell(
        window_start=window.start,
        window_end=window.end,
        area_code=area,
        combination_code=combination,
        count=count,
        suppressed=count is None,
        granularity=window.granularity,
        measure=measure,
        rule=f"{RULE} {MEDIAN_RULE}" if measure == MEDIAN else RULE,
        median_days=days,
    )
