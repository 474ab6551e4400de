"""The practitioners' alert inbox: ``GET /v1/alerts``.

A practitioner sees the alerts their organisation is told of (a rule's recipients), newest
first, each with its explanation at the level the read rules give them (``hub.access``:
an event's type, partner and date only where its lawful basis shares them with the
reader's organisation; the rest is counted, not shown) and their organisation's own
``source_ref``s for the person, to open the record in their own system. Every alert shown
is a view of a person's data, so each is audited (``alert.view``) before the answer goes.
Each carries its ``status`` in the organisation's inbox (``hub.alert_status``);
``?status=open,acknowledged,closed`` chooses which are shown (open and acknowledged
unless asked).

The alerts live in the alerts stage's table, partitioned by person, so each worker
answers for its partitions and the worker asked gathers the others' shares (with a worker
assertion, as for the books).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from faust.web import Request, Response, View

from hub._http import problem
from hub.access import Bases, Reader
from hub.alert_status import BadStatus, InboxStatus, status_book, statuses_asked
from hub.app import Hub
from hub.audit import write_audit
from hub.errors import BrokerError
from hub.models import utc_now
from hub.readers import practitioner
from hub.routing import PeerUnavailable, peers, principal_of
from hub.stages.basis import Consents
from hub.stages.view import TimelineEntry
from hub.users import User

__all__ = [
    "ALERT_VIEW",
    "CONSENTS",
    "INBOX_MAX",
    "gather",
    "inbox_items",
    "install_alerts_api",
    "owners_of",
    "told",
]

INBOX_MAX = 200  # alerts in one answer, newest first
ALERT_VIEW = "alert.view"
_SHOWN = ("event_type", "partner_id", "occurred_at")


def inbox_items(
    stored: list[dict[str, Any]], person_id: str, reader: Reader, bases: Bases
) -> list[dict[str, Any]]:
    """``person_id``'s alerts (the table's rows) told to ``reader``'s organisation, as the
    reader may see them."""
    items = []
    for alert in stored:
        if not told(alert, reader):
            continue
        shown, withheld = [], 0
        for event in alert["events"]:
            entry = TimelineEntry.model_validate(event | {"tokens": [], "source_ref": "-"})
            fields = bases.fields(entry, reader)
            if "event_type" in fields:
                shown.append({f: event[f] for f in _SHOWN if f in fields})
            else:
                withheld += 1
        items.append(
            {
                "alert_id": alert["alert_id"],
                "person_id": person_id,
                "rule": alert["rule"],
                "severity": alert["severity"],
                "purpose": alert["purpose"],
                "created_at": alert["created_at"],
                "raised_at": alert["raised_at"],
                "events": shown,
                "events_withheld": withheld,
                "source_refs": alert["refs"].get(reader.partner, []),
            }
        )
    return items


def owners_of(item: dict[str, Any]) -> list[str]:
    """The partners whose entries an inbox item shows (its data owners, for the audit)."""
    return sorted({e["partner_id"] for e in item["events"] if "partner_id" in e})


def told(alert: dict[str, Any], reader: Reader) -> bool:
    """Whether ``reader`` is told of ``alert`` (a table row): their partner is a recipient,
    and they are in the team the rule names, if it names one."""
    team = alert.get("team")
    return reader.partner in alert["recipients"] and (team is None or reader.team == team)


class Unanswered(Exception):
    """Raised when another worker did not give its share, or the alerts' statuses could
    not be read (the caller answers 503)."""


def local_alerts(hub: Hub, reader: Reader) -> list[dict[str, Any]]:
    """The alerts on this worker's partitions told to ``reader``'s organisation."""
    bases = Bases(hub.agreements, lambda cid: CONSENTS.live(cid, hub.consents), utc_now())
    found = []
    for key, stored in list(hub.alerts.items()):
        person_id = key.decode() if isinstance(key, bytes) else str(key)
        found += inbox_items((stored or {}).get("alerts", []), person_id, reader, bases)
    return found


async def gather(
    hub: Hub, user: User, reader: Reader, *, statuses: Collection[InboxStatus] | None = None
) -> list[dict[str, Any]]:
    """Every worker's share of the alerts told to ``reader``'s organisation, newest first,
    each with its ``status`` in that organisation's inbox (only those in ``statuses`` if
    given); other workers are asked with a worker assertion for ``user`` (``Unanswered``)."""
    found = local_alerts(hub, reader)
    try:
        for share in await peers(hub).shares("/v1/_alerts", user):
            found += share
    except PeerUnavailable:
        raise Unanswered from None
    book = status_book(hub)
    try:
        await book.current()
    except BrokerError:
        raise Unanswered from None
    for item in found:
        raised_at = datetime.fromisoformat(item["raised_at"])
        item["status"] = book.status(item["alert_id"], reader.partner, raised_at).value
    if statuses is not None:
        found = [item for item in found if item["status"] in statuses]
    return sorted(found, key=lambda a: datetime.fromisoformat(a["raised_at"]), reverse=True)


CONSENTS = Consents()  # parsed consents, checked against the table on every use


def install_alerts_api(hub: Hub) -> None:
    """Add the inbox (and the share each worker gives another) to the web server."""

    class InboxPage(View):
        """``GET /v1/alerts``: the alerts the caller's organisation is told of."""

        async def get(self, request: Request) -> Response:
            known = await practitioner(hub, self, request, "alerts.list")
            if not isinstance(known, tuple):
                return known
            user, reader = known
            try:
                query: Any = request.query  # a multidict: status may be given again
                statuses = statuses_asked(query.getall("status", []))
            except BadStatus as exc:
                return problem(self, 422, str(exc), [("status", str(exc).split(": ", 1)[1])])
            try:
                found = await gather(hub, user, reader, statuses=statuses)
            except Unanswered:
                return problem(self, 503, "the alerts could not all be gathered; try again")
            shown = found[:INBOX_MAX]
            for alert in shown:
                owners = owners_of(alert)
                await write_audit(hub, user, alert["person_id"], "ok", ALERT_VIEW, owners=owners)
            return self.json({"alerts": shown, "truncated": len(found) > INBOX_MAX})

    class ShareForAWorker(View):
        """``GET /v1/_alerts``: this worker's share of a practitioner's inbox, for a worker."""

        async def get(self, request: Request) -> Response:
            principal = principal_of(hub, request)
            if principal is None or not principal.via_worker:
                return problem(self, 401, "only the place's workers may ask for one worker's share")
            known = await practitioner(hub, self, None, user=principal.user)
            return known if not isinstance(known, tuple) else self.json(local_alerts(hub, known[1]))

    hub.app.page("/v1/alerts")(InboxPage)
    hub.app.page("/v1/_alerts")(ShareForAWorker)
