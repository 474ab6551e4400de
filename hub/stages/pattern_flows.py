"""The flows between services a person is counted in, in one window (issue 13 item 2).

Flows are counts of people like every other pattern, so they take the patterns' one path:
``hub.stages.pattern_windows.person_cells`` adds these cells to a person's cells,
``hub.stages.pattern_people`` sends their changes, and the window stage
(``hub.stages.patterns``) puts them through disclosure control with the rest. Erasure,
exactly-once and lateness therefore hold for flows as for patterns. The measures:

- ``transition`` ``A>B``: the person had an event at partner B in the window and an event
  at another partner A in the ``within`` before it (``Settings.flows_within_days``),
  counted in the window of the B event; every such A counts, one partner's own events
  never do;
- ``referral`` ``<to>.<kind>``: the person had a referral to partner ``<to>`` made,
  accepted, declined or completed in the window (the receiving partner is the payload's
  ``to_partner``, an organisation code the view's entry carries);
- ``services`` ``one`` or ``several``: the partners the person was seen by in the window;
- ``referral_days`` ``A>B=d`` (never published, the whole place only): the person's first
  referral made by A to B in the window reached its first contact at B (any event of B's
  at or after it) after ``d`` whole days. The window stage turns these into one
  ``median_days`` cell per pair (``medians``): the referrals behind it, a count like any
  other, and their median, published only when that count is.

Like the other measures, each person is counted in one area per window and in the place.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from hub.disclosure import THRESHOLD

if TYPE_CHECKING:  # pattern_windows imports this module
    from hub.stages.pattern_windows import Seen

__all__ = [
    "DAYS",
    "FLOW_MEASURES",
    "MEDIAN",
    "MEDIAN_RULE",
    "REFERRAL_KINDS",
    "day_values",
    "flow_cells",
    "medians",
]

FLOW_MEASURES = ("transition", "referral", "services", "median_days")
DAYS = "referral_days"  # a referral's days to first contact: kept, never published
MEDIAN = "median_days"
REFERRAL_KINDS = ("made", "accepted", "declined", "completed")
MEDIAN_RULE = (
    f"A median of days from a referral made to the first contact at the receiving partner "
    f"is published, in whole days, only when at least {THRESHOLD} referrals (a person's "
    "first from one partner to another in the window) are behind it; their number is "
    "published as a count under the rule for counts."
)


def flow_cells(
    entries: Sequence[Seen], inside: Sequence[Seen], within: timedelta
) -> set[tuple[str, str]]:
    """(measure, combination) of the flows a person (whole timeline ``entries``; those in
    the window ``inside``) is counted in, for their area and the place alike."""
    found = {("transition", pair) for pair in _transitions(entries, inside, within)}
    for entry in inside:
        family, _, kind = entry.event_type.partition(".")
        if family == "referral" and entry.to_partner and kind in REFERRAL_KINDS:
            found.add(("referral", f"{entry.to_partner}.{kind}"))
    partners = {e.partner_id for e in inside if e.partner_id}
    if partners:
        found.add(("services", "one" if len(partners) == 1 else "several"))
    return found


def _transitions(entries: Sequence[Seen], inside: Sequence[Seen], within: timedelta) -> set[str]:
    ordered = sorted(entries, key=lambda e: e.occurred_at)
    times = [e.occurred_at for e in ordered]
    pairs = set()
    for to in inside:
        first = bisect_left(times, to.occurred_at - within)
        for came in ordered[first : bisect_left(times, to.occurred_at)]:
            if came.partner_id and to.partner_id and came.partner_id != to.partner_id:
                pairs.add(f"{came.partner_id}>{to.partner_id}")
    return pairs


def day_values(entries: Sequence[Seen], inside: Sequence[Seen]) -> set[str]:
    """``A>B=d`` for each pair's first referral made in the window that has had its first
    contact at B: ``d`` whole days after it (a combination of ``DAYS`` cells). B's own
    referral events (accepting, declining, completing) are not contact with the person."""
    values = set()
    seen_pairs: set[str] = set()
    for made in sorted(inside, key=lambda e: e.occurred_at):
        if made.event_type != "referral.made" or not made.to_partner:
            continue
        pair = f"{made.partner_id}>{made.to_partner}"
        if made.partner_id == made.to_partner or pair in seen_pairs:
            continue
        seen_pairs.add(pair)
        contacts = [
            e.occurred_at
            for e in entries
            if e.partner_id == made.to_partner
            and e.occurred_at >= made.occurred_at
            and not e.event_type.startswith("referral.")
        ]
        if contacts:
            days = (min(contacts) - made.occurred_at) // timedelta(days=1)
            values.add(f"{pair}={days}")
    return values


def medians(days: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Per pair (``A>B``), from a window's ``DAYS`` cells (combination ``A>B=d`` → people):
    the referrals behind it and their median in whole days (a half rounds up)."""
    values: dict[str, list[int]] = defaultdict(list)
    for combination, n in days.items():
        pair, _, d = combination.rpartition("=")
        values[pair] += [int(d)] * n
    return {
        pair: (len(found), math.floor(statistics.median(found) + 0.5))
        for pair, found in values.items()
        if found
    }
