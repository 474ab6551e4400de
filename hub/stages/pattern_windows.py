"""The patterns' calendar windows and the cells one person is counted in.

Windows are by event time (``occurred_at``): ISO weeks, from Monday 00:00 UTC, and calendar
months. They are written here rather than taken from ``faust.windows``: Faust's tumbling
windows are a fixed number of seconds from the epoch (a week from 1970-01-01 starts on a
Thursday, and a month, of 28 to 31 days, is no fixed size), and its windowed tables keep
their own stores and changelogs, where the stage runtime writes a stage's tables itself so
that a batch lands once under kill -9 (``hub.runtime.run``).

A cell is ``measure|area|combination`` within a window, counting people, not events:

- ``domain``: people with an event of the need domain (the event type's family,
  ``housing`` of ``housing.arrears``);
- ``event_type``: people with an event of the type;
- ``co_occurrence``: people with events of both domains of a pair (``education+housing``);
- ``new_or_returning``: ``new`` if the person's timeline has no event before the window
  starts, else ``returning``;
- the flows between services (``transition``, ``referral``, ``services`` and the unpublished
  ``referral_days``): ``hub.stages.pattern_flows``.

Each person is counted in one area per window, and in the place total (area empty): their
area is the area code of their latest event in the window that carries one. Someone whose
events in the window carry none is counted in the total and in the unpublished
``NO_AREA`` member. So a total is exactly the sum of its members, and disclosure control's
margins (``hub.disclosure``) are a sound account of what a reader could difference; a
person counted in two wards would have made a total smaller than its parts, and a
suppressed ward no longer the total minus the others.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from typing import Any, Literal

from hub.stages.pattern_flows import DAYS, day_values, flow_cells

__all__ = [
    "GRANULARITIES",
    "LATE",
    "MEASURES",
    "NO_AREA",
    "Seen",
    "Window",
    "cell_key",
    "domain_of",
    "person_cells",
    "split_cell",
    "window_of",
    "windows_of",
]

Granularity = Literal["week", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("week", "month")
MEASURES = ("domain", "event_type", "co_occurrence", "new_or_returning")
LATE = "late_events||all"  # a window's cell of events that came after it closed
NO_AREA = "-"  # the area of people with no area code: a margin's member, never published


@dataclass(frozen=True)
class Window:
    """One calendar window: ``[start, end)`` in UTC."""

    granularity: Granularity
    start: datetime
    # Worked out once, when made: asked for every entry of a timeline, for every open
    # window (a cached_property's lookup cost more than the sum).
    end: datetime = field(init=False, repr=False, compare=False)
    # ``week:2026-11-23`` (its Monday) or ``month:2026-11-01``: a key of the window.
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.granularity == "week":
            end = self.start + timedelta(days=7)
        else:
            year, month = divmod(self.start.month, 12)  # month 12 → next year's January
            end = self.start.replace(year=self.start.year + year, month=month + 1)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "id", f"{self.granularity}:{self.start.date().isoformat()}")

    @classmethod
    def parse(cls, window_id: str) -> Window:
        """The window ``window_id`` names (ValueError if it names none)."""
        granularity, _, day = window_id.partition(":")
        if granularity not in GRANULARITIES:
            raise ValueError("window: must be week:<date> or month:<date>")
        window = window_of(granularity, datetime.fromisoformat(day).replace(tzinfo=UTC))
        if window.id != window_id:
            raise ValueError("window: must start on a Monday (week) or the 1st (month)")
        return window

    def previous(self) -> Window:
        """The window just before this one, of the same granularity."""
        return window_of(self.granularity, self.start - timedelta(microseconds=1))

    def closed(self, watermark: datetime | None, grace: timedelta) -> bool:
        """Whether the window takes no more events: event time has passed its end and the
        grace period (Faust's stream time: the latest event time seen)."""
        return watermark is not None and watermark > self.end + grace


def windows_of(at: datetime) -> tuple[Window, Window]:
    """The week and the month ``at`` falls in."""
    return _windows_of_day(at.astimezone(UTC).date())


@functools.lru_cache(maxsize=4096)
def _windows_of_day(day: date) -> tuple[Window, Window]:
    # Kept by day (a few bytes each, a decade in all): a person's whole timeline is read
    # again each time it changes, so the same days come back batch after batch.
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return window_of("week", midnight), window_of("month", midnight)


def window_of(granularity: str, at: datetime) -> Window:
    """The window of ``granularity`` (week or month) that ``at`` falls in."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "week":
        return Window("week", day - timedelta(days=day.weekday()))
    return Window("month", day.replace(day=1))


@dataclass(frozen=True)
class Seen:
    """What the patterns read of one timeline entry: codes and a time, nothing else (the
    partner that recorded it, and a referral's receiving partner, are organisations)."""

    event_type: str
    occurred_at: datetime
    area_code: str | None
    partner_id: str = ""
    to_partner: str | None = None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Seen:
        """From an entry as the view sends it (JSON)."""
        at = datetime.fromisoformat(entry["occurred_at"])
        return cls(
            str(entry["event_type"]),
            at.astimezone(UTC),
            entry.get("area_code") or None,
            str(entry.get("partner_id") or ""),
            entry.get("to_partner") or None,
        )


def domain_of(event_type: str) -> str:
    """An event type's need domain: its family (``housing`` of ``housing.arrears``)."""
    return event_type.split(".", 1)[0]


def cell_key(measure: str, area: str | None, combination: str) -> str:
    """``measure|area|combination``, the area empty for the whole place."""
    return f"{measure}|{area or ''}|{combination}"


def split_cell(cell: str) -> tuple[str, str | None, str]:
    """(measure, area or None for the place, combination) of a cell key."""
    measure, area, combination = cell.split("|")
    return measure, area or None, combination


def person_cells(
    entries: Sequence[Seen], window: Window, within: timedelta = timedelta(days=30)
) -> set[str]:
    """The cells one person (their whole timeline: ``entries``) is counted in, in ``window``
    (``within``: how close two partners' events must be to make a transition)."""
    start, end = window.start, window.end
    inside = [e for e in entries if start <= e.occurred_at < end]
    if not inside:
        return set()
    returning = any(e.occurred_at < window.start for e in entries)
    status = "returning" if returning else "new"
    placed = sorted((e.occurred_at, e.area_code) for e in inside if e.area_code)
    area = placed[-1][1] if placed else NO_AREA
    measured = _measured(inside, status) | flow_cells(entries, inside, within)
    cells = {cell_key(m, where, c) for m, c in measured for where in (area, None)}
    return cells | {cell_key(DAYS, None, days) for days in day_values(entries, inside)}


def _measured(entries: Iterable[Seen], status: str) -> set[tuple[str, str]]:
    types = {e.event_type for e in entries}
    domains = sorted({domain_of(t) for t in types})
    found = {("domain", d) for d in domains} | {("event_type", t) for t in types}
    found |= {("co_occurrence", f"{a}+{b}") for a, b in combinations(domains, 2)}
    found.add(("new_or_returning", status))
    return found
