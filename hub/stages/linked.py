"""Which identifiers partners have linked: what a consent covers besides its own tokens.

A consent covers its subject as a person, and a partner's link (``IdentityLink``) is the
evidence that two identifiers are that person. Identity keeps, in the ``linked`` global
table, each linked token's group (``token`` → the group's key, ``c:<key>`` → its tokens),
built from link evidence only: identifiers that merely appeared together on an event do
not extend a consent, or one event carrying someone else's identifier would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["Linked", "components", "linked_to"]

_GROUP = "c:"


def linked_to(table: Mapping[str, Any], token: str) -> list[str]:
    """The tokens partners' links join ``token`` to (itself included; [] if none)."""
    key = table.get(token)
    return list(table.get(_GROUP + key) or ()) if key else []


class Linked:
    """Keeps the ``linked`` table in step with people's link evidence."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table

    def update(self, person: Mapping[str, Any]) -> None:
        """Regroup ``person``'s tokens by their link edges (after a link or a retraction)."""
        key_of: dict[str, str | None] = {}
        groups: dict[str, list[str]] = {}
        for group in _link_groups(person):
            key = group[0] if len(group) > 1 else None
            key_of.update(dict.fromkeys(group, key))
            if key is not None:
                groups[key] = group
        stale = {k for t in key_of if (k := self.table.get(t)) is not None} - set(groups)
        for key in stale:
            if _GROUP + key in self.table:
                del self.table[_GROUP + key]
        for token, key in key_of.items():
            if key is None and self.table.get(token) is not None:
                del self.table[token]
            elif key is not None and self.table.get(token) != key:
                self.table[token] = key
        for key, group in groups.items():
            if self.table.get(_GROUP + key) != group:
                self.table[_GROUP + key] = group

    def forget(self, tokens: Iterable[str]) -> None:
        """Erasure: drop the groups of ``tokens``."""
        for token in tokens:
            key = self.table.get(token)
            if key is not None:
                del self.table[token]
                if _GROUP + key in self.table:
                    del self.table[_GROUP + key]


def _link_groups(person: Mapping[str, Any]) -> list[list[str]]:
    """``person``'s tokens in groups joined by link evidence (sorted, singletons too)."""
    edges = {
        edge: sources
        for edge, sources in person["edges"].items()
        if any(str(s).startswith("link:") for s in sources)
    }
    return sorted(sorted(group) for group in components(person["tokens"], edges))


def components(tokens: Iterable[str], edges: Iterable[str]) -> list[set[str]]:
    """``tokens`` grouped by ``edges`` ('a|b' keys): the connected components."""
    neighbours: dict[str, set[str]] = {t: set() for t in tokens}
    for key in edges:
        a, b = key.split("|", 1)
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen: set[str] = set()
    found = []
    for start in neighbours:
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for other in neighbours[frontier.pop()] - component:
                component.add(other)
                frontier.append(other)
        seen |= component
        found.append(component)
    return found
