"""Disclosure control: what a count of people may look like when it leaves the hub.

Stewards see place-level counts, never people, so no published number may single anyone
out, alone or beside other published numbers. The rule (``RULE``, stated in every
output) has four parts, each closing a way to learn about a few people:

- **Primary suppression.** A count of 1 to 4 (under ``THRESHOLD``) is not shown: a small
  count lets someone who knows a little about a person guess the rest.
- **Rounding.** Every other count is rounded to the nearest multiple of ``BASE``, so the
  difference of two published counts (two areas, windows or filters) is only known to
  within a few people, never exactly.
- **Secondary suppression.** Where a total and its members are both published, one
  hidden member is the total minus the others. So in every margin relation (a total and
  its members) that has exactly one suppressed entry, a second is suppressed as well.
  Two or more hidden members are still known together, as the total minus the published
  members: if that is a small count (two people in two areas), or as many people as
  hidden members (a reader knows each is at least 1, so each is 1), each of them can be
  pinned, so a further member is suppressed. This repeats until no relation changes.
- **Empty cells are not published.** A cell with no people is left out of the output.

``control`` applies the rule to one set of related cells at once (a window's table with
its totals, and any filtered totals or neighbouring windows a reader could set beside
it): suppression is only sound over every relation a reader could difference.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["BASE", "RULE", "THRESHOLD", "control", "round_count"]

THRESHOLD = 5
BASE = 5
RULE = (
    f"Counts of people under {THRESHOLD} are suppressed; other counts are rounded to the "
    f"nearest multiple of {BASE}; further counts are suppressed wherever a suppressed one "
    "could be worked out from totals, margins or neighbouring windows; cells with no "
    "people are not published."
)

K = TypeVar("K", bound=Hashable)


def round_count(n: int) -> int | None:
    """A count as it may be published: ``None`` under ``THRESHOLD``, else the nearest
    multiple of ``BASE``. With an odd ``BASE`` a whole number is never halfway between
    two multiples, so there are no ties (were ``BASE`` even, a tie would go up).

    Raises ``ValueError`` for a negative count: it is not a count of people.
    """
    if n < 0:
        raise ValueError("count: a count of people is never negative")
    if n < THRESHOLD:
        return None
    return (n + BASE // 2) // BASE * BASE


def control(
    counts: Mapping[K, int], margins: Sequence[tuple[K, Sequence[K]]]
) -> dict[K, int | None]:
    """Every cell of ``counts`` as it may be published (``None``: suppressed), empty
    cells left out.

    ``counts`` holds each cell's true count, totals included. ``margins`` names each
    total with its members; a total counts people, so it may be less than its members'
    sum (a person in two areas) but never more. Where a relation has exactly one
    suppressed entry, or a published total whose suppressed members count 1 to 4 people
    together or one each, its smallest published member is suppressed too (the first in
    ``members`` order on a tie), or its total when no member is left to suppress; this repeats until
    no relation changes, since a cell may sit in several relations.

    Raises ``ValueError`` for a negative count, a margin naming a cell that has no
    count, or a total above its members' sum.
    """
    for total, members in margins:
        if total not in counts or any(member not in counts for member in members):
            raise ValueError("margins: every total and member needs a count")
        if counts[total] > sum(counts[member] for member in members):
            raise ValueError("margins: a total counts people, so never more than its members")
    published = {key: round_count(n) for key, n in counts.items() if n != 0}
    suppressed = {key for key, value in published.items() if value is None}
    changed = True
    while changed:
        changed = False
        for total, members in margins:
            if not _exposed(total, members, counts, suppressed):
                continue
            extra = _complement(total, members, counts, suppressed)
            if extra is not None:
                suppressed.add(extra)
                changed = True
    return {key: None if key in suppressed else value for key, value in published.items()}


def _exposed(total: K, members: Sequence[K], counts: Mapping[K, int], suppressed: set[K]) -> bool:
    """Whether a relation gives a suppressed count away: its one suppressed entry is the
    others' difference, and its suppressed members' people together (the published total
    minus the published members) are a count like any other, to be kept out if small."""
    hidden = {total, *members} & suppressed
    if len(hidden) == 1:
        return True
    if total in suppressed:
        return False
    hidden_members = set(members) & suppressed
    together = sum(counts[member] for member in hidden_members)
    # Each is at least 1 to a reader, so as many people as hidden members pins each at 1.
    return 0 < together < THRESHOLD or 0 < together == len(hidden_members)


def _complement(
    total: K, members: Sequence[K], counts: Mapping[K, int], suppressed: set[K]
) -> K | None:
    """The entry to suppress beside a relation's one suppressed entry: the smallest
    published member (least information lost), else the total, else none."""
    shown = [member for member in members if member not in suppressed and counts[member] > 0]
    if shown:
        return min(shown, key=lambda member: counts[member])
    if total not in suppressed and counts[total] > 0:
        return total
    return None
