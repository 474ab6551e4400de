"""A data owner's list of who read its data: ``GET /v1/partners/{partner_id}/reads``.

Every answer that shows a person's entries writes an ``AuditRecord`` naming the partners
whose entries it showed (``owners``, AuditRecord v2: person reads, lookups, break-glass
reads; alert views once the inbox passes them). The listing is those records with the
partner among their owners and outcome ``ok``: who read (the reader's organisation and
role), when, which person, and what action (``person.read``, ``person.lookup``,
``person.break-glass``, ``alert.view``), newest first.

**Who.** A reader's partner and role, never their user id: another organisation's staff are
that organisation's to name. The record's ``audit_id`` is given, so the reading
organisation can find its user in its own trail when the owner asks. The owner's own staff's
reads are listed too (they showed its data as well), with its own partner id.

**Who may list.** The partner's own feed (role ``partner``) and privacy officer, for its
own data only; stewards and admins for any partner. Anyone else: 403, audited. The listing
itself is audited (``partner.reads``) before it goes.

**How.** ``hub.audit`` is the one trail (as for the access history: a second copy could
disagree with it). It is keyed by person, so one owner's reads are on every partition: the
listing reads every partition from the first record at ``since`` (Kafka's time index;
default ``DEFAULT_SINCE_DAYS`` ago) to the ends seen at the request. That is a read of the
whole trail for the window, fine for a place's demo and for occasional listings; a place
whose trail grows past what one request reads in ``READ_TIMEOUT_S`` would keep a derived
topic keyed by owner instead (one more write per read), as ``hub.break_glass`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faust.web import Request, Response, View

from hub._http import problem
from hub.access_history import actor_partner
from hub.app import Hub
from hub.audit import write_audit
from hub.errors import BrokerError
from hub.keyed_read import read_all
from hub.models import AuditRecord, utc_now
from hub.routing import caller
from hub.users import Role, User

__all__ = [
    "DEFAULT_SINCE_DAYS",
    "LIST_MAX",
    "OWNER_READS",
    "BadListing",
    "OwnerRead",
    "install_owner_reads",
    "may_list",
    "reads_of",
    "since_of",
]

OWNER_READS = "partner.reads"  # the audit action of a listing
DEFAULT_SINCE_DAYS = 30
LIST_MAX = 1000  # newest reads a listing returns
READ_TIMEOUT_S = 20.0  # to read every partition of hub.audit from since to its end
_SKEW = timedelta(minutes=1)  # Kafka's timestamps and the records' ``at`` may differ a little

PartnerOf = Callable[[AuditRecord], str | None]  # an audit record → its actor's partner


class BadListing(ValueError):
    """Raised when the listing's query breaks a rule; the message names the field and rule."""


@dataclass(frozen=True)
class OwnerRead:
    """One read that showed the owner's data, as the owner sees it."""

    audit_id: str
    at: datetime
    action: str
    person_id: str | None
    actor_partner: str | None
    role: str

    def to_json(self) -> dict[str, Any]:
        """The read as the listing shows it (UTC time with a ``Z``)."""
        return {
            "audit_id": self.audit_id,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "action": self.action,
            "person_id": self.person_id,
            "actor_partner": self.actor_partner,
            "role": self.role,
        }


def may_list(user: User, partner_id: str) -> bool:
    """Whether ``user`` may list the reads of ``partner_id``'s data."""
    if user.role in (Role.STEWARD, Role.ADMIN):
        return True
    return user.role in (Role.PARTNER, Role.PRIVACY_OFFICER) and user.partner == partner_id


def since_of(query: Any, now: datetime) -> datetime:
    """The ``since`` of a listing's query (ISO 8601 with a UTC offset, not in the future),
    or ``DEFAULT_SINCE_DAYS`` before ``now``; ``BadListing`` naming the field and rule."""
    given = query.getall("since", [])
    if not given:
        return now - timedelta(days=DEFAULT_SINCE_DAYS)
    rule = "since: give one ISO 8601 time with a UTC offset, not in the future"
    if len(given) != 1:
        raise BadListing(rule)
    try:
        since = datetime.fromisoformat(given[0])
    except ValueError:
        raise BadListing(rule) from None
    if since.tzinfo is None or since > now:
        raise BadListing(rule)
    return since


def reads_of(
    owner: str,
    records: Iterable[AuditRecord],
    partner_of: PartnerOf,
    since: datetime,
    limit: int = LIST_MAX,
) -> tuple[list[OwnerRead], bool]:
    """The reads among ``records`` that showed ``owner``'s data at or after ``since``,
    newest first, at most ``limit``; and whether older ones were left out."""
    shown = sorted(
        (r for r in records if r.outcome == "ok" and owner in r.owners and r.at >= since),
        key=lambda r: r.at,
        reverse=True,
    )
    reads = [
        OwnerRead(r.audit_id, r.at, r.action, r.person_id, partner_of(r), r.role)
        for r in shown[:limit]
    ]
    return reads, len(shown) > limit


def install_owner_reads(hub: Hub) -> None:
    """Add ``GET /v1/partners/{partner_id}/reads`` to the web server."""
    known = {partner.id for partner in hub.partners}

    class OwnerReadsPage(View):
        """``GET /v1/partners/{partner_id}/reads``: who read the partner's data. Any worker
        answers: it reads the trail, not a view."""

        async def get(self, request: Request, partner_id: str) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if not may_list(user, partner_id):
                await write_audit(hub, user, None, "denied", OWNER_READS)
                return problem(
                    self,
                    403,
                    "only the partner itself (its feed or privacy officer), stewards and "
                    "admins list the reads of a partner's data",
                )
            if partner_id not in known:  # partner ids are public: the partners file
                return problem(self, 404, "partner_id: not a partner of this place")
            now = utc_now()
            try:
                since = since_of(request.query, now)
            except BadListing as exc:
                return problem(self, 422, str(exc))
            start_ms = int((since - _SKEW).timestamp() * 1000)
            try:
                records = await read_all(
                    hub.settings, hub.serde, hub.topics.audit, AuditRecord, READ_TIMEOUT_S, start_ms
                )
            except BrokerError as exc:  # nothing shown, so nothing to audit
                return problem(self, 503, str(exc))
            reads, truncated = reads_of(
                partner_id, records, lambda r: actor_partner(r, hub.users), since
            )
            await write_audit(hub, user, None, "ok", OWNER_READS)
            return self.json(
                {
                    "partner_id": partner_id,
                    "since": since.isoformat().replace("+00:00", "Z"),
                    "reads": [read.to_json() for read in reads],
                    "truncated": truncated,
                }
            )

    hub.app.page("/v1/partners/{partner_id}/reads")(OwnerReadsPage)
