"""Identity: which person a set of pseudonymous tokens belongs to.

A person is the union of the tokens seen together on events. A person's id is minted
from the strongest token it was first seen with (NHS number before UPN before council
reference before the name key), so it is deterministic on tokens and never reveals them.
Merging two people who turn out to be one is not done yet: an event that links two known
people is filed under the smaller id.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable

__all__ = ["SCHEME_STRENGTH", "person_id_for", "resolve"]

SCHEME_STRENGTH = ("nhs", "upn", "council", "person")


def _strength(token: str) -> tuple[int, str]:
    scheme = token.split(":", 1)[0]
    rank = SCHEME_STRENGTH.index(scheme) if scheme in SCHEME_STRENGTH else len(SCHEME_STRENGTH)
    return rank, token


def person_id_for(token: str) -> str:
    """The person id first minted for ``token``: 'p-' + 20 base32 characters of its hash."""
    digest = hashlib.sha256(b"person|" + token.encode()).digest()
    return "p-" + base64.b32encode(digest).decode()[:20].lower()


def resolve(tokens: Iterable[str], lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """The person id for ``tokens`` and the tokens that must now be linked to it."""
    ordered = sorted(set(tokens), key=_strength)
    known = {token: lookup(token) for token in ordered}
    people = sorted({person for person in known.values() if person is not None})
    person_id = people[0] if people else person_id_for(ordered[0])
    return person_id, [token for token, person in known.items() if person is None]
