"""Find a person from one's own record: ``GET /v1/people?source_ref=...``.

A practitioner gives a ``source_ref`` of their own organisation (their partner is the one
their token names) and gets the person's id and view exactly as ``GET /v1/people/{id}``
shows it to them (``hub.people_api.answer_for``: the same read rules and refusals).

**Finding the person.** Views are partitioned by person across workers, so the view stage
keeps an index beside them (``hub.stages.refs``): per partition, which people hold a
partner's ref, keyed by a SHA-256 of partner and ref. The worker asked reads the index rows
of the ref on every partition (one row each, not every view), keeps the people whose view it
owns, and asks every other worker of the group for its share with a worker assertion
(``hub.routing.Peers``, as the inbox does), naming the ref by its digest only. Each candidate
is checked against the view itself: its entry must be the caller's partner's and carry that
ref, so a ref that a split, merge, erasure, withdrawal or expiry took out of a view finds no
one, even before the index row is rewritten. Views written before the index existed are not
in it until they change; ``placehub replay`` rebuilds it.

**Answers.** One person: 200 with their view. None: 404, the same reply whether the ref is
unknown, another partner's, or no longer in any view (the digest includes the partner, so
another organisation's ref never matches), so a reader cannot learn whom the hub knows.
Several (one record whose events identity could not join into one person): 409 with their
ids, to read each by id. A missing, repeated or malformed ``source_ref``: 422 naming the
field and the rule, never the value. Every lookup is audited (``person.lookup``: ``ok`` with
the person and the data owners shown, ``not-found``, or ``denied`` for a role that reads no
people) before the reply goes. The ref is never logged, counted or put in a reply's error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from faust.web import Request, Response, View
from pydantic import TypeAdapter, ValidationError
from yarl import URL

from hub._http import problem
from hub.access import Reader, present, refusal
from hub.app import Hub
from hub.audit import write_audit
from hub.models import SourceRef
from hub.people_api import answer_for, view_of
from hub.readers import practitioner
from hub.routing import PeerUnavailable, peers, principal_of
from hub.stages.refs import holds, index_key, ref_digest
from hub.users import User

__all__ = [
    "LOOKUP",
    "BadLookup",
    "Match",
    "install_lookup",
    "local_matches",
    "source_ref_of",
]

LOOKUP = "person.lookup"  # the audit action
NOT_FOUND = "no record of your organisation with that source_ref is visible to you"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SOURCE_REF: TypeAdapter[str] = TypeAdapter(SourceRef)


class BadLookup(ValueError):
    """Raised when a lookup's query breaks a rule; the message names the field and the rule,
    never the value, and ``status`` is the reply's."""

    def __init__(self, title: str, status: int = 422) -> None:
        super().__init__(title)
        self.title, self.status = title, status


def source_ref_of(query: Any, partner: str) -> str:
    """The one valid ``source_ref`` of a lookup's query (a multidict) by a member of
    ``partner``; ``BadLookup`` naming the field and rule broken."""
    refs = query.getall("source_ref", [])
    if len(refs) != 1:
        raise BadLookup("source_ref: give exactly one, your organisation's record reference")
    named = query.getall("partner", [])
    if any(p != partner for p in named):
        raise BadLookup("partner: a practitioner looks up only their own organisation's records")
    try:
        return _SOURCE_REF.validate_python(refs[0])
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "value_error":  # the national-identifier check
            raise BadLookup(
                "source_ref: must be a partner's record reference, not a national identifier"
            ) from None
        raise BadLookup(
            "source_ref: must be 1 to 64 characters of letters, digits and . _ : / -"
        ) from None


@dataclass(frozen=True)
class Match:
    """A person whose view holds the caller's ref, as the read rules show them."""

    person_id: str
    view: dict[str, Any]  # the body GET /v1/people/{id} answers
    owners: list[str]  # the partners whose entries it shows

    def to_json(self) -> dict[str, Any]:
        """The match as one worker gives it to another."""
        return {"person_id": self.person_id, "view": self.view, "owners": self.owners}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Match:
        """A match another worker gave."""
        return cls(data["person_id"], data["view"], list(data["owners"]))


class Unanswered(Exception):
    """Raised when the lookup cannot be complete: another worker did not give its share, or
    a partition has no owner yet (the caller answers 503)."""


def _owned_here(hub: Hub, person_id: str) -> bool:
    try:
        owner = URL(str(hub.app.router.key_store(hub.views.name, person_id)))
    except KeyError:
        raise Unanswered from None  # rebalancing
    own = URL(peers(hub).own_url)
    return (owner.host, owner.port) == (own.host, own.port)


def local_matches(hub: Hub, reader: Reader, digest: str) -> list[Match]:
    """The people this worker owns whose view holds ``reader``'s partner's ref ``digest``."""
    candidates: set[str] = set()
    for partition in range(hub.settings.partitions):
        candidates.update(hub.view_refs.get(index_key(partition, digest)) or [])
    found = []
    for person_id in sorted(candidates):
        if not _owned_here(hub, person_id):
            continue  # its owner answers for it (this may be a standby copy)
        view = view_of(hub, person_id)
        if view is None or not holds(view.entries, reader.partner, digest):
            continue  # the index has not caught up with a change that took the ref out
        answer = answer_for(hub, reader, person_id)
        if answer.outcome == "ok":
            view_body = present(person_id, answer.shown, reader)
            found.append(Match(person_id, view_body, answer.owners))
    return found


async def gather(hub: Hub, user: User, reader: Reader, digest: str) -> list[Match]:
    """Every worker's matches of ``digest`` for ``reader`` (``Unanswered`` if one is missing)."""
    found = local_matches(hub, reader, digest)
    try:
        for share in await peers(hub).shares(f"/v1/_people/refs/{digest}", user):
            found += [Match.from_json(item) for item in share]
    except PeerUnavailable:
        raise Unanswered from None
    unique = {match.person_id: match for match in found}
    return [unique[person_id] for person_id in sorted(unique)]


def install_lookup(hub: Hub) -> None:
    """Add the lookup (and the share each worker gives another) to the web server."""

    class LookupPage(View):
        """``GET /v1/people?source_ref=...``: the person behind one of the caller's records."""

        async def get(self, request: Request) -> Response:
            known = await practitioner(hub, self, request, LOOKUP)
            if not isinstance(known, tuple):
                return known
            user, reader = known
            try:
                ref = source_ref_of(request.query, reader.partner)
            except BadLookup as exc:  # nothing looked up, so nothing to audit
                return problem(self, exc.status, exc.title)
            try:
                matches = await gather(hub, user, reader, ref_digest(reader.partner, ref))
            except Unanswered:
                return problem(self, 503, "another worker did not answer; try again")
            if not matches:
                await write_audit(hub, user, None, "not-found", LOOKUP)
                return problem(self, 404, NOT_FOUND)
            for match in matches:  # each person found is a read of them
                owners = match.owners if len(matches) == 1 else ()
                await write_audit(hub, user, match.person_id, "ok", LOOKUP, owners=owners)
            if len(matches) > 1:
                return self.json(
                    {
                        "status": 409,
                        "title": "source_ref: your record is joined to more than one person; "
                        "read each by id",
                        "person_ids": [match.person_id for match in matches],
                    },
                    status=409,
                )
            return self.json(matches[0].view)

    class ShareForAWorker(View):
        """``GET /v1/_people/refs/{digest}``: this worker's matches, for a worker."""

        async def get(self, request: Request, digest: str) -> Response:
            principal = principal_of(hub, request)
            if principal is None or not principal.via_worker or principal.user is None:
                return problem(self, 401, "only the place's workers may ask for one worker's share")
            refused = refusal(principal.user)
            if refused is not None:
                return problem(self, 403, refused)
            if not _DIGEST.match(digest):
                return problem(self, 422, "digest: must be 64 lower-case hex digits")
            try:
                found = local_matches(hub, Reader.of(principal.user), digest)
            except Unanswered:
                return problem(self, 503, "no worker owns a partition yet (rebalancing); retry")
            return self.json([match.to_json() for match in found])

    hub.app.page("/v1/people")(LookupPage)
    hub.app.page("/v1/_people/refs/{digest}")(ShareForAWorker)
