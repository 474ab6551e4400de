"""Joins identity must not make: a person never holds two identifiers of a scheme that is
unique per person (two NHS numbers are two people, or a data-quality error to look at).

Such a join goes to a review queue (the ``identity-review`` table, listed to admins)
instead of merging. An event whose identifiers would make one is still placed: it joins
the identifiers that fit with its strongest one, and the rest stay with their own people.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableMapping
from datetime import datetime
from typing import Any

__all__ = ["REVIEW_MAX", "UNIQUE_SCHEMES", "Review", "conflicts", "joinable"]

# Schemes a person holds at most one token of.
UNIQUE_SCHEMES = frozenset({"nhs"})
# The most joins waiting for review; beyond it a join is still refused, only not listed.
REVIEW_MAX = 10_000


def _scheme(token: str) -> str:
    """The scheme and the place key's id (``nhs:<key id>``): during a key rotation a
    partner sends one identifier under both keys, which is one person, not two."""
    return token.rsplit(":", 1)[0]


def _closure(
    token_person: MutableMapping[str, str], people: MutableMapping[str, Any], tokens: Iterable[str]
) -> set[str]:
    """``tokens`` with every token of the people they already belong to."""
    found = set(tokens)
    for person in {p for t in found if (p := token_person.get(t)) is not None}:
        found.update(people[person]["tokens"])
    return found


def conflicts(
    token_person: MutableMapping[str, str], people: MutableMapping[str, Any], tokens: Iterable[str]
) -> bool:
    """True if joining ``tokens`` would give one person two tokens of a unique scheme."""
    unique = [
        t
        for t in _closure(token_person, people, tokens)
        if _scheme(t).split(":", 1)[0] in UNIQUE_SCHEMES
    ]
    return len(unique) != len({_scheme(t) for t in unique})


def joinable(
    token_person: MutableMapping[str, str],
    people: MutableMapping[str, Any],
    tokens: list[str],
    strength: Any,
) -> tuple[list[str], list[str]]:
    """(tokens that can join, tokens left out): strongest first, each kept if adding it and
    its person makes no conflict with what is kept so far (so the result is the same
    whatever order the tokens came in)."""
    kept: list[str] = []
    left: list[str] = []
    for token in sorted(set(tokens), key=strength):
        if conflicts(token_person, people, [*kept, token]):
            left.append(token)
        else:
            kept.append(token)
    return kept, left


class Review:
    """The review queue in a table: one row per refused join, keyed by its tokens."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def add(self, tokens: Iterable[str], kind: str, partner: str, now: datetime) -> bool:
        """List a refused join (False if the queue is full and it was not listed)."""
        ordered = sorted(set(tokens))
        key = hashlib.sha256("|".join(ordered).encode()).hexdigest()[:32]
        if key in self.table:
            return True
        if len(self.table) >= REVIEW_MAX:
            return False
        self.table[key] = {
            "tokens": ordered,
            "kind": kind,
            "partner": partner,
            "at": now.isoformat(),
        }
        return True

    def forget(self, tokens: Iterable[str]) -> None:
        """Erasure: no review row may keep an erased person's tokens."""
        erased = set(tokens)
        for key, row in list(self.table.items()):
            if row and erased & set(row["tokens"]):
                del self.table[key]
