"""Whether a rule holds over a person's timeline now, and which events explain it.

Pure: a timeline is a list of entries (plain mappings or objects such as
``hub.stages.view.TimelineEntry``) of which only the event id, type, partner and time
are read, so an explanation can carry codes and dates only, never free text. Conditions
only ever ask for "at least", so a rule that does not hold cannot start holding as time
passes; a holding one can weaken only when its oldest event leaves the window
(``Match.closes_at``), which is when a stage needs to look again without a new event.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Protocol

from hub.alerts.conditions import Condition, CountOf, DistinctOf, SequenceOf, matches
from hub.alerts.rules import Rule, RuleBook
from hub.errors import InputError

__all__ = [
    "Match",
    "Occurrence",
    "TimelineItem",
    "evaluate",
    "evaluate_book",
    "next_close",
    "occurrences",
]


class _EntryLike(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def partner_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


TimelineItem = Mapping[str, Any] | _EntryLike


@dataclass(frozen=True, slots=True, order=True)
class Occurrence:
    """One timeline event as a rule sees it (ordered by time, then id)."""

    occurred_at: datetime
    event_id: str
    event_type: str
    partner_id: str

    @property
    def domain(self) -> str:
        """The need domain: the family part of the event type ('housing', ...)."""
        return self.event_type.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Match:
    """A rule holding now: the events that explain it, in time order, and its strength
    (what it counted: events, partners, domains or sequences), which escalation compares."""

    rule_code: str
    strength: int
    events: tuple[Occurrence, ...]
    closes_at: datetime  # the oldest explaining event leaves the window then

    @property
    def event_ids(self) -> list[str]:
        """The explaining events' ids, in time order (what the alert traces back to)."""
        return [event.event_id for event in self.events]

    @property
    def partners(self) -> list[str]:
        """The partners whose events explain the match, sorted."""
        return sorted({event.partner_id for event in self.events})

    @property
    def explanation(self) -> list[str]:
        """The event types that explain the match, sorted: the alert's codes."""
        return sorted({event.event_type for event in self.events})


_FIELDS = ("occurred_at", "event_id", "event_type", "partner_id")  # Occurrence's order
# Occurrence's own order as a sort key: worked out once an event, not twice a comparison.
_ORDER = attrgetter(*_FIELDS)
_AT = attrgetter("occurred_at")


def _fields(item: TimelineItem) -> list[Any]:
    """The item's ``_FIELDS`` (one type check an item: ``Mapping``'s is not cheap)."""
    if isinstance(item, Mapping):
        values = [item.get(name) for name in _FIELDS]
    else:
        values = [getattr(item, name, None) for name in _FIELDS]
    if None in values:
        raise InputError(f"timeline entry {_FIELDS[values.index(None)]}: is missing")
    return values


def occurrences(timeline: Iterable[TimelineItem]) -> list[Occurrence]:
    """The timeline's events, one per event id, in time order. Raises InputError for an
    entry without a timezone (it could not be placed in a window)."""
    by_id: dict[str, Occurrence] = {}
    for item in timeline:
        occurrence = Occurrence(*_fields(item))
        if (
            not isinstance(occurrence.occurred_at, datetime)
            or occurrence.occurred_at.tzinfo is None
        ):
            raise InputError("timeline entry occurred_at: is not a time with a timezone")
        by_id[occurrence.event_id] = occurrence
    return sorted(by_id.values(), key=_ORDER)


def evaluate(rule: Rule, timeline: Iterable[TimelineItem], now: datetime) -> Match | None:
    """The match of ``rule`` over the events of the ``window_days`` up to ``now`` (later
    events do not count yet), or None when it does not hold."""
    return _evaluate(rule, occurrences(timeline), now)


def evaluate_book(book: RuleBook, timeline: Iterable[TimelineItem], now: datetime) -> list[Match]:
    """Every rule of ``book`` that holds over ``timeline`` at ``now``. The timeline is
    read and sorted once for all the rules (the alerts stage's main cost per person)."""
    entries = occurrences(timeline)
    return [match for rule in book if (match := _evaluate(rule, entries, now)) is not None]


def _evaluate(rule: Rule, entries: list[Occurrence], now: datetime) -> Match | None:
    """``evaluate`` over ``entries``, already read by ``occurrences``."""
    if now.tzinfo is None:
        raise InputError("now: has no timezone")
    window = timedelta(days=rule.window_days)
    # The entries are in time order: the window's are one slice of them.
    start = bisect_right(entries, now - window, key=_AT)
    events = entries[start : bisect_right(entries, now, lo=start, key=_AT)]
    found = _holds(rule.condition, events)
    if found is None:
        return None
    strength, explaining = found
    ordered = tuple(sorted(explaining, key=_ORDER))
    return Match(rule.code, strength, ordered, ordered[0].occurred_at + window)


def next_close(matches: Iterable[Match]) -> datetime | None:
    """When the first of ``matches`` can weaken with no new event (None if there are none)."""
    return min((match.closes_at for match in matches), default=None)


Found = tuple[int, set[Occurrence]] | None


def _holds(condition: Condition, events: list[Occurrence]) -> Found:
    if condition.count is not None:
        return _count(condition.count, events)
    if condition.distinct_partners is not None:
        return _distinct(condition.distinct_partners, events, lambda e: e.partner_id)
    if condition.distinct_domains is not None:
        return _distinct(condition.distinct_domains, events, lambda e: e.domain)
    if condition.sequence is not None:
        return _sequence(condition.sequence, events)
    assert condition.all_of is not None  # the model requires exactly one shape
    strength, explaining = 0, set()
    for part in condition.all_of:
        found = _holds(part, events)
        if found is None:
            return None
        strength += found[0]
        explaining |= found[1]
    return strength, explaining


def _count(count: CountOf, events: list[Occurrence]) -> Found:
    matched = {e for e in events if matches(e.event_type, count.event_types)}
    return (len(matched), matched) if len(matched) >= count.at_least else None


def _distinct(
    distinct: DistinctOf, events: list[Occurrence], key: Callable[[Occurrence], str]
) -> Found:
    matched = {e for e in events if matches(e.event_type, distinct.event_types)}
    keys = {key(e) for e in matched}
    return (len(keys), matched) if len(keys) >= distinct.at_least else None


def _sequence(sequence: SequenceOf, events: list[Occurrence]) -> Found:
    """Each ``then`` event paired with the latest ``first`` event strictly before it, within
    ``within_days``, with no ``unless_between`` event between them; strength is the number
    of ``then`` events so paired. ``events`` are in time order."""
    within = timedelta(days=sequence.within_days)
    explaining: set[Occurrence] = set()
    paired = 0
    for index, later in enumerate(events):
        if not matches(later.event_type, sequence.then):
            continue
        earlier = _latest_first(sequence, events[:index], later, within)
        if earlier is not None:
            paired += 1
            explaining |= {earlier, later}
    return (paired, explaining) if paired else None


def _latest_first(
    sequence: SequenceOf, before: list[Occurrence], later: Occurrence, within: timedelta
) -> Occurrence | None:
    """The latest ``first`` event of ``before`` that ``later`` follows, or None when there
    is none within ``within`` or an ``unless_between`` event comes after it (an event
    matching both patterns counts as ``unless_between``)."""
    unless = sequence.unless_between or []
    for event in reversed(before):
        if event.occurred_at < later.occurred_at - within:
            return None
        if event.occurred_at == later.occurred_at:
            continue  # at the same moment: not "then"
        if matches(event.event_type, unless):
            return None  # e.g. the plan was closed since: it no longer explains ``later``
        if matches(event.event_type, sequence.first):
            return event
    return None
