"""The view's index of partners' record refs: which people on a partition hold a partner's
``source_ref``, so a practitioner's lookup by their own record (``hub.lookup``) reads a
few table rows instead of every person's view.

One row per (person's partition, partner, ref): the key is the partition and a SHA-256 of
the partner and the ref, the value the sorted ids of the people on that partition whose
view holds an entry of that partner with that ref. The view stage keeps the rows with the
views, on the same partition and in the same write phase, so a row's worker is the view's
worker, and a split, merge, erasure or expiry that takes a ref out of a view takes the
person out of its row in the same batch. The partition is in the key because one ref can
sit with people on two partitions (a record whose events identity could not join), and a
Faust table keeps one value per key across all its partitions.

The ref itself is not in the key: it is a partner's record id, which the hub shows only to
that partner (the views' changelog holds it, but keys reach more places than values).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the view stage imports this module to keep the index
    from hub.stages.view import PersonView, TimelineEntry

__all__ = ["holds", "index_key", "ref_digest", "reindex"]


def ref_digest(partner: str, source_ref: str) -> str:
    """The hex SHA-256 naming ``partner``'s record ``source_ref`` in the index."""
    # As a JSON pair, so no partner and ref can run into another's.
    return hashlib.sha256(json.dumps([partner, source_ref]).encode()).hexdigest()


def index_key(partition: int, digest: str) -> bytes:
    """The index row of ``digest`` on ``partition``."""
    return f"{partition}:{digest}".encode()


def _refs_of(view: PersonView | None) -> set[tuple[str, str]]:
    """Every (partner, ref) in ``view``."""
    return {(e.partner_id, e.source_ref) for e in view.entries} if view else set()


def holds(entries: Iterable[TimelineEntry], partner: str, digest: str) -> bool:
    """Whether one of ``entries`` is ``partner``'s and carries the ref ``digest`` names (the
    check against the view itself, so a row the index has not yet dropped finds no one)."""
    return any(
        e.partner_id == partner and ref_digest(e.partner_id, e.source_ref) == digest
        for e in entries
    )


def reindex(
    index: MutableMapping[bytes, Any],
    partition: int,
    person_id: str,
    before: PersonView | None,
    after: PersonView | None,
) -> None:
    """Move ``person_id`` in ``index`` from the refs of ``before`` to those of ``after``
    (its view on ``partition`` before and after a batch; None: no view)."""
    # Only the refs that changed are hashed: a batch adds one or two to a long timeline.
    old, new = _refs_of(before), _refs_of(after)
    for digest in sorted(ref_digest(*ref) for ref in old - new):
        key = index_key(partition, digest)
        people = [p for p in index.get(key, []) if p != person_id]
        if people:
            index[key] = people
        elif key in index:
            del index[key]
    for digest in sorted(ref_digest(*ref) for ref in new - old):
        key = index_key(partition, digest)
        index[key] = sorted({*index.get(key, []), person_id})
