"""The patterns a place should publish, reckoned from the events sent, without the hub's code.

A broker test knows every event it sent and whose it is; from that alone this module works
out each window's true counts of people (the rules of ``hub.stages.pattern_windows`` and
``hub.stages.pattern_flows``, written again here from their docstrings), the events
counted late, and what a reader of the published numbers can work out about a suppressed
one. Only ``hub.disclosure.control`` is shared with the hub: it is unit-tested on its own,
and re-writing it would test nothing more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import combinations

from hub.disclosure import BASE, THRESHOLD, control

__all__ = [
    "Cell",
    "Constraint",
    "Sent",
    "closed",
    "late_counts",
    "pinned",
    "published",
    "reader_constraints",
    "true_counts",
    "window_end",
    "windows",
]

# granularity, window start (a date), measure, area (None: the place), combination
Cell = tuple[str, date, str, str | None, str]
NO_AREA = "-"  # people whose events in a window carry no area: in totals, never published


@dataclass(frozen=True)
class Sent:
    """One admitted event as the test knows it: whose it is and what it says."""

    person: str
    event_type: str
    partner: str
    at: datetime
    area: str | None
    to_partner: str | None = None  # a referral's receiving partner


def windows(at: datetime) -> list[tuple[str, date]]:
    """The ISO week (its Monday) and calendar month (its 1st) an event time falls in."""
    day = at.astimezone(UTC).date()
    return [("week", day - timedelta(days=day.weekday())), ("month", day.replace(day=1))]


def window_end(granularity: str, start: date) -> datetime:
    """When a window ends: a week after its Monday, or the next month's 1st (00:00 UTC)."""
    if granularity == "week":
        end = start + timedelta(days=7)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


def closed(granularity: str, start: date, watermark: datetime, grace: timedelta) -> bool:
    """Whether a window takes no more events: the latest event time seen is past its end
    and the grace period."""
    return watermark > window_end(granularity, start) + grace


def true_counts(
    sent: Iterable[Sent],
    counted: set[tuple[str, date]] | None = None,
    within: timedelta = timedelta(days=30),
    flows: bool = False,
) -> dict[Cell, int]:
    """People per cell: each person's whole timeline (``sent`` grouped by person) in each
    window it has an event in (only the ``counted`` windows, if given). ``flows`` adds the
    transitions between partners (``within`` apart) and the services a person saw."""
    timelines: dict[str, list[Sent]] = defaultdict(list)
    for event in sent:
        timelines[event.person].append(event)
    counts: dict[Cell, int] = defaultdict(int)
    for events in timelines.values():
        for granularity, start in {w for e in events for w in windows(e.at)}:
            if counted is not None and (granularity, start) not in counted:
                continue
            inside = [e for e in events if (granularity, start) in windows(e.at)]
            began = datetime(start.year, start.month, start.day, tzinfo=UTC)
            status = "returning" if any(e.at < began for e in events) else "new"
            placed = sorted((e.at, e.area) for e in inside if e.area)
            area = placed[-1][1] if placed else NO_AREA
            found = _measured(inside, status)
            if flows:
                found |= _flows(events, inside, within)
            for measure, combination in found:
                for where in (area, None):
                    counts[granularity, start, measure, where, combination] += 1
    return dict(counts)


def _measured(inside: Sequence[Sent], status: str) -> set[tuple[str, str]]:
    types = {e.event_type for e in inside}
    domains = sorted({t.split(".")[0] for t in types})
    found = {("domain", d) for d in domains} | {("event_type", t) for t in types}
    found |= {("co_occurrence", f"{a}+{b}") for a, b in combinations(domains, 2)}
    return found | {("new_or_returning", status)}


def _flows(
    events: Sequence[Sent], inside: Sequence[Sent], within: timedelta
) -> set[tuple[str, str]]:
    """An event at B in the window after one at another partner A no more than ``within``
    before it is a transition A>B; a referral in the window counts by its receiving partner
    and step; the partners seen in the window are one or several."""
    found = {
        ("transition", f"{came.partner}>{to.partner}")
        for to in inside
        for came in events
        if came.partner != to.partner and to.at - within <= came.at < to.at
    }
    for event in inside:
        family, _, step = event.event_type.partition(".")
        if family == "referral" and event.to_partner and step in _REFERRAL_STEPS:
            found.add(("referral", f"{event.to_partner}.{step}"))
    partners = {e.partner for e in inside}
    return found | {("services", "one" if len(partners) == 1 else "several")}


def published(counts: Mapping[Cell, int]) -> dict[Cell, int | None]:
    """What disclosure control lets out of ``counts``, window by window: each place total
    with its areas as margins (members in the order of their ``measure|area|combination``
    key, no area first: the order that decides a tie), and everyone seen in an area (a
    hidden total, never published) with new + returning and one service + several as its
    margins, as the hub gives control; people with no area left out."""
    by_window: dict[tuple[str, date], dict[Cell, int]] = defaultdict(dict)
    for cell, n in counts.items():
        by_window[cell[:2]][cell] = n
    shown: dict[Cell, int | None] = {}
    for cells in by_window.values():
        seen = _seen_margins(cells)
        members: dict[Cell, list[Cell]] = defaultdict(list)
        for cell in sorted(cells, key=_key):
            if cell[3] is not None:
                members[(*cell[:3], None, cell[4])].append(cell)
        controlled = control(cells, [*members.items(), *seen])
        shown |= {c: v for c, v in controlled.items() if c[3] != NO_AREA and c[2] != SEEN}
    return shown


SEEN = "seen"
_REFERRAL_STEPS = ("made", "accepted", "declined", "completed")


def _key(cell: Cell) -> str:
    return f"{cell[2]}|{cell[3] or ''}|{cell[4]}"


def _seen_margins(cells: dict[Cell, int]) -> list[tuple[Cell, list[Cell]]]:
    """Put each area's hidden total of everyone seen into ``cells``; its two margins."""
    margins = []
    for granularity, start, measure, area, _ in sorted(cells, key=_key):
        total: Cell = (granularity, start, SEEN, area, "all")
        if measure != "new_or_returning" or total in cells:
            continue
        pairs = [
            [(granularity, start, m, area, part) for part in parts]
            for m, parts in (
                ("new_or_returning", ("new", "returning")),
                ("services", ("one", "several")),
            )
        ]
        cells[total] = sum(cells.get(c, 0) for c in pairs[0])
        for pair in ([c for c in cells_ if c in cells] for cells_ in pairs):
            if sum(cells[c] for c in pair) >= cells[total]:
                margins.append((total, pair))
    return margins


def late_counts(late: Iterable[tuple[str, date]]) -> dict[tuple[str, date], int | None]:
    """Each window's count of events that arrived after it closed (``late``: the window
    of each such event, once per event), as published."""
    counts: dict[tuple[str, date], int] = defaultdict(int)
    for window in late:
        counts[window] += 1
    return control(counts, [])


# -- the reader: what the published numbers say about the true ones -------------------------

# sum(coefficient * count) >= 0, or == 0 when exact
Constraint = tuple[tuple[tuple[Cell, int], ...], bool]
_UNBOUNDED = 100_000  # "suppressed" tells the reader nothing above
_SEARCH = 50  # splits a feasibility search may take
_COVERED = ("domain", "event_type", "new_or_returning")  # a month's people, in its weeks
_CONTAINING = ("domain", "event_type", "co_occurrence", "new_or_returning")


def reader_constraints(
    cells: Iterable[Cell], closed_windows: Iterable[tuple[str, date]] = ()
) -> list[Constraint]:
    """What anyone knows relates the cells of one measure and combination: a place total
    is the sum of its areas (each person is counted in one area of a window). A month and
    its weeks, area by area and for the place (true when people keep their area, as the
    simulated ones do): people with a domain or event type in a month had it in some week
    overlapping the month (unless one of those weeks had closed: its people are not
    counted), and so did the new and the returning; the month counts everyone a week inside
    it counts with a domain, an event type, two domains or nothing before (new). Two
    domains in a month may be in different weeks, and returning in a week may be new in
    the month: those relations are not true, so not used."""
    shut = set(closed_windows)
    known = set(cells)
    constraints: list[Constraint] = []
    areas: dict[Cell, list[Cell]] = defaultdict(list)
    weeks: dict[tuple[str | None, str, str], list[Cell]] = defaultdict(list)
    for cell in known:
        granularity, start, measure, area, combination = cell
        if area is not None:
            areas[(granularity, start, measure, None, combination)].append(cell)
        if granularity == "week":
            weeks[(area, measure, combination)].append(cell)
    for total, members in areas.items():
        constraints.append((((total, -1), *((m, 1) for m in members)), True))
    for cell in known:
        granularity, start, measure, area, combination = cell
        if granularity != "month":
            continue
        end = window_end("month", start).date()
        overlapping = [
            w for w in weeks[(area, measure, combination)] if start - timedelta(6) <= w[1] < end
        ]
        if measure in _COVERED and not any(
            ("week", start + timedelta(days=d)) in shut for d in range(-6, 31)
        ):
            constraints.append((((cell, -1), *((w, 1) for w in overlapping)), False))
        if measure in _CONTAINING and combination != "returning":
            constraints += [
                (((cell, 1), (week, -1)), False)
                for week in overlapping
                if start <= week[1] and week[1] + timedelta(days=7) <= end
            ]
    return constraints


def pinned(
    truth: Mapping[Cell, int], shown: Mapping[Cell, int | None], constraints: Sequence[Constraint]
) -> list[Cell]:
    """The suppressed cells whose true count is the only one consistent with everything
    published and ``constraints``. A published ``v`` is a true count in ``[v - 2, v + 2]``
    and at least 5; a suppressed one 1 or more (primary or secondary, the reader cannot
    tell); an unpublished cell 0. The truth must be consistent; is any other value?"""
    bounds: dict[Cell, tuple[int, int]] = {}
    for cell in {c for terms, _ in constraints for c, _ in terms} | set(shown):
        if cell not in shown:
            bounds[cell] = (0, 0)
            continue
        value = shown[cell]
        if value is None:
            bounds[cell] = (1, _UNBOUNDED)
        else:
            bounds[cell] = (max(value - BASE // 2, THRESHOLD), value + BASE // 2)
    groups = _components(bounds, constraints)
    found = []
    for cells, related in groups:
        local = {c: bounds[c] for c in cells}
        assert _feasible(local, related), "the truth should be consistent with the output"
        for cell in sorted(cells, key=str):
            if shown.get(cell, 0) is not None:
                continue
            low, high = local[cell]
            true = truth[cell]
            below = true > low and _feasible({**local, cell: (low, true - 1)}, related)
            above = true < high and _feasible({**local, cell: (true + 1, high)}, related)
            if not (below or above):
                found.append(cell)
    return found


def _components(
    bounds: Mapping[Cell, tuple[int, int]], constraints: Sequence[Constraint]
) -> list[tuple[set[Cell], list[Constraint]]]:
    """The cells in groups no constraint links, each with its constraints."""
    parent = {cell: cell for cell in bounds}

    def root(cell: Cell) -> Cell:
        while parent[cell] != cell:
            parent[cell] = parent[parent[cell]]
            cell = parent[cell]
        return cell

    for terms, _ in constraints:
        first = root(terms[0][0])
        for cell, _ in terms[1:]:
            parent[root(cell)] = first
    cells: dict[Cell, set[Cell]] = defaultdict(set)
    for cell in bounds:
        cells[root(cell)].add(cell)
    related: dict[Cell, list[Constraint]] = defaultdict(list)
    for constraint in constraints:
        related[root(constraint[0][0][0])].append(constraint)
    return [(members, related[key]) for key, members in cells.items()]


def _feasible(bounds: dict[Cell, tuple[int, int]], constraints: Sequence[Constraint]) -> bool:
    """Whether whole counts within ``bounds`` meet every constraint: narrow, then split the
    least certain cell and try each half, depth first. After ``_SEARCH`` splits without an
    answer it says yes: the reader is then as strong as interval reasoning (a pin it finds
    is real; a pin that needs a longer search goes unseen)."""
    todo = [bounds]
    for _ in range(_SEARCH):
        if not todo:
            return False
        narrowed = _narrow(todo.pop(), constraints)
        if narrowed is None:
            continue
        open_cells = [(high - low, str(c), c) for c, (low, high) in narrowed.items() if high > low]
        if not open_cells:
            return True
        _, _, cell = min(open_cells)
        low, high = narrowed[cell]
        middle = (low + high) // 2
        todo += [{**narrowed, cell: (middle + 1, high)}, {**narrowed, cell: (low, middle)}]
    return bool(todo)


def _narrow(
    bounds: dict[Cell, tuple[int, int]], constraints: Sequence[Constraint]
) -> dict[Cell, tuple[int, int]] | None:
    """``bounds`` narrowed through every constraint until none narrows (None: no counts
    fit). Each term's bound follows from the others' extremes."""
    narrowed = dict(bounds)
    changed = True
    while changed:
        changed = False
        for terms, exact in constraints:
            sides = [terms, tuple((c, -k) for c, k in terms)] if exact else [terms]
            for side in sides:  # sum(k * x) >= 0
                most = sum(_largest(narrowed[c], k) for c, k in side)
                if most < 0:
                    return None
                for cell, k in side:
                    low, high = narrowed[cell]
                    rest = most - _largest((low, high), k)
                    # k * x >= -rest
                    if k > 0:
                        new = (max(low, math.ceil(-rest / k)), high)
                    else:
                        new = (low, min(high, math.floor(rest / -k)))
                    if new[0] > new[1]:
                        return None
                    if new != (low, high):
                        narrowed[cell] = new
                        most += _largest(new, k) - _largest((low, high), k)
                        changed = True
    return narrowed


def _largest(bound: tuple[int, int], k: int) -> int:
    """The largest ``k * x`` for ``x`` within ``bound``."""
    return max(k * bound[0], k * bound[1])
