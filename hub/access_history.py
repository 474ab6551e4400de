"""A person's access history: ``GET /v1/people/{person_id}/access``, for a privacy officer
answering a subject access request (who read or looked up this person, and when).

The history is ``hub.audit`` itself, not a copy: every person read, lookup and refusal is
already there, and a second record of them could disagree with it. ``hub.audit`` is keyed
by person id (the web handlers and the stage runtime both key a record by its
``person_id``, or by its action when it has none), so one person's records are all on one
partition; a listing reads that partition from its beginning to the end offset seen when
the request came, which is the whole history up to the request without reading the rest of
the trail. The read uses aiokafka, and the registry lookups of schemas it has not yet seen
run in a thread, so the event loop is never blocked.

An ``AuditRecord`` names its actor by user id. The listing gives the actor's partner
instead (``hub`` for the hub itself), from the users file as it stands at the request: a
subject access request is answered with the organisations that read the person, and a
user since removed from the file shows as ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faust.web import Request, Response, View

from hub._http import problem
from hub.app import Hub
from hub.audit import write_audit
from hub.config import Settings
from hub.errors import BrokerError
from hub.keyed_read import read_key
from hub.models import AuditRecord
from hub.routing import caller
from hub.serde import Serde
from hub.users import Role, User, UserDirectory

__all__ = [
    "ACCESS_HISTORY",
    "HUB_PARTNER",
    "LIST_MAX",
    "AccessEntry",
    "History",
    "actor_partner",
    "history_of",
    "install_access_history",
    "read_audit",
]

ACCESS_HISTORY = "person.access-history"  # the audit action of a listing
HUB_ACTOR, HUB_ROLE = "hub", "system"  # who the hub's own audit records name (stages.effects)
HUB_PARTNER = "hub"  # what the listing names as the hub's "partner"
LIST_MAX = 1000  # newest records a listing returns
READ_TIMEOUT_S = 10.0  # to read the person's partition of hub.audit to its end


PartnerOf = Callable[[AuditRecord], str | None]  # an audit record → its actor's partner


@dataclass(frozen=True)
class AccessEntry:
    """One access to a person as a subject access request reports it."""

    at: datetime
    action: str
    outcome: str
    role: str
    actor_partner: str | None

    def to_json(self) -> dict[str, Any]:
        """The entry as the listing shows it (UTC time with a ``Z``)."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "outcome": self.outcome,
            "role": self.role,
            "actor_partner": self.actor_partner,
        }


@dataclass(frozen=True)
class History:
    """A person's accesses, newest first; ``truncated`` if older ones were left out."""

    person_id: str
    entries: list[AccessEntry]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        """The listing's reply body."""
        return {
            "person_id": self.person_id,
            "accesses": [entry.to_json() for entry in self.entries],
            "truncated": self.truncated,
        }


def actor_partner(record: AuditRecord, users: UserDirectory) -> str | None:
    """The partner ``record``'s actor acted for: ``hub`` for the hub's own records, the
    user's partner from the users file, or None (a steward or admin acts for no partner; a
    user no longer in the file cannot be placed)."""
    if (record.actor, record.role) == (HUB_ACTOR, HUB_ROLE):
        return HUB_PARTNER
    user = users.by_id(record.actor)
    return None if user is None else user.partner


def history_of(
    person_id: str, records: Iterable[AuditRecord], partner_of: PartnerOf, limit: int = LIST_MAX
) -> History:
    """The accesses to ``person_id`` among ``records``, newest first, at most ``limit``."""
    mine = sorted(
        (record for record in records if record.person_id == person_id),
        key=lambda record: record.at,
        reverse=True,
    )
    entries = [AccessEntry(r.at, r.action, r.outcome, r.role, partner_of(r)) for r in mine[:limit]]
    return History(person_id, entries, truncated=len(mine) > limit)


async def read_audit(
    settings: Settings, serde: Serde, topic: str, person_id: str
) -> list[AuditRecord]:
    """Every audit record keyed by ``person_id`` up to the partition's end at the call;
    BrokerError if that end is not reached within ``READ_TIMEOUT_S``."""
    key = person_id.encode()
    return await read_key(settings, serde, topic, key, AuditRecord, READ_TIMEOUT_S)


def install_access_history(hub: Hub) -> None:
    """Add ``GET /v1/people/{person_id}/access`` (privacy officers only) to the web server."""

    async def audit(user: User, person_id: str, outcome: str) -> None:
        await write_audit(hub, user, person_id, outcome, ACCESS_HISTORY)

    class AccessHistoryPage(View):
        """``GET /v1/people/{person_id}/access``: who accessed the person, for a privacy
        officer. Any worker answers: it reads the trail, not the person's view."""

        async def get(self, request: Request, person_id: str) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if user.role is not Role.PRIVACY_OFFICER:
                await audit(user, person_id, "denied")
                return problem(self, 403, "only privacy officers read a person's access history")
            try:
                records = await read_audit(hub.settings, hub.serde, hub.topics.audit, person_id)
            except BrokerError as exc:  # nothing shown, so nothing to audit
                return problem(self, 503, str(exc))
            history = history_of(person_id, records, lambda r: actor_partner(r, hub.users))
            # An unknown person gets an empty history and 200, as does one nobody has read:
            # the officer must be able to answer "nothing" to a subject access request, and a
            # 404 would tell who the hub knows. The audit record is in Kafka before the reply.
            await audit(user, person_id, "ok")
            return self.json(history.to_json())

    hub.app.page("/v1/people/{person_id}/access")(AccessHistoryPage)
