"""Person reads: ``GET /v1/people/{person_id}`` and its break-glass form
``POST /v1/people/{person_id}/break-glass``, served by the worker that owns the view; and
``GET /v1/partners/{partner_id}/break-glass``, the break-glass reads of a partner's data.

Who sees what is ``hub.access`` (the read policy); break-glass requests and their record
for the data owners are ``hub.break_glass``. Every read of person data writes an
``AuditRecord`` to ``hub.audit``, whatever its outcome, and is answered only once that
record is in Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from faust.web import Request, Response, View

from hub._admin import ensure_topic
from hub._http import problem
from hub.access import Bases, Reader, Shown, involved, owners, present, select
from hub.app import Hub
from hub.audit import write_audit
from hub.break_glass import (
    BODY_MAX_BYTES,
    BadBreakGlass,
    BreakGlassLog,
    break_glass_topic,
    reads_for,
    reason_code_of,
)
from hub.models import utc_now
from hub.readers import practitioner
from hub.routing import caller, read_signed_body, route_to_owner
from hub.stages.basis import Consents
from hub.stages.view import PersonView, prune
from hub.users import Role, User

__all__ = ["NOT_VISIBLE", "Answer", "answer_for", "data_owners", "install_people_api", "view_of"]

READ, BREAK_GLASS, BREAK_GLASS_LIST = "person.read", "person.break-glass", "break-glass.list"
# One answer for an unknown person and one the reader's organisation is not involved
# with, so a reader cannot learn who the hub knows; the audit record tells them apart.
NOT_VISIBLE = (
    "no person with that id is visible to you: your organisation must be involved with "
    "them, or make a break-glass read (POST .../break-glass with reason_code and reason)"
)


def view_of(hub: Hub, person_id: str) -> PersonView | None:
    """The stored view of ``person_id`` (on the worker that owns it), without any entry
    past its retention (the sweep may not have run yet)."""
    stored = hub.views.get(person_id.encode())
    if not stored:
        return None
    return prune(PersonView.model_validate(stored), utc_now(), hub.ctx.retention)[0]


def alerted(hub: Hub, person_id: str) -> Collection[str]:
    """The partners told of an alert about ``person_id`` (the alerts stage's table, kept on
    the person's partition like the view): they count as involved."""
    stored = hub.alerts.get(person_id.encode()) or {}
    return {p for alert in stored.get("alerts", []) for p in alert["recipients"]}


_CONSENTS = Consents()  # parsed consents, checked against the table on every use


def shown_to(hub: Hub, reader: Reader, view: PersonView | None) -> Shown:
    """The entries of ``view`` (and their fields) the read rules show ``reader`` now."""
    if view is None:
        return []
    bases = Bases(hub.agreements, lambda cid: _CONSENTS.live(cid, hub.consents), utc_now())
    return select(view, lambda entry: bases.fields(entry, reader))


def data_owners(shown: Shown) -> list[str]:
    """The partners whose entries ``shown`` holds (the reader's own included): the data
    owners of a read, as its audit record names them."""
    return sorted({entry.partner_id for entry, _ in shown})


@dataclass(frozen=True)
class Answer:
    """What a person read gives ``reader``: its audit outcome and the entries shown."""

    outcome: str  # "ok", "not-found" (nothing to show) or "denied" (not involved)
    shown: Shown

    @property
    def owners(self) -> list[str]:
        """The partners whose entries the answer shows: the read's data owners."""
        return data_owners(self.shown)


def answer_for(hub: Hub, reader: Reader, person_id: str) -> Answer:
    """The ordinary read of ``person_id`` by ``reader`` on the worker owning the view (the
    person lookup gives the same answer)."""
    view = view_of(hub, person_id)
    if view is not None and not involved(view, reader.partner, alerted(hub, person_id)):
        return Answer("denied", [])
    shown = shown_to(hub, reader, view)
    return Answer("ok" if shown else "not-found", shown)


def install_people_api(hub: Hub) -> None:
    """Add the person reads and the partners' break-glass listing to the web server."""
    app = hub.app
    ensure_topic(hub.settings, break_glass_topic(hub.settings), partitions=hub.settings.partitions)
    break_glass = BreakGlassLog(hub.settings, app, hub.serde)

    async def audit(
        user: User,
        person_id: str | None,
        outcome: str,
        action: str = READ,
        audit_id: str = "",
        owners: Collection[str] = (),
    ) -> None:
        await write_audit(hub, user, person_id, outcome, action, audit_id, owners)

    class PersonPage(View):
        """``GET /v1/people/{person_id}``: the view as the caller may see it."""

        # Answered by the worker owning the view, called with a worker assertion: the
        # caller's token never leaves this worker (hub.routing).
        @route_to_owner(hub, hub.views, match_info="person_id")
        async def get(self, request: Request, person_id: str) -> Response:
            known = await practitioner(hub, self, request, READ, person_id)
            if not isinstance(known, tuple):
                return known  # refused
            user, reader = known
            answer = answer_for(hub, reader, person_id)
            await audit(user, person_id, answer.outcome, owners=answer.owners)
            if answer.outcome != "ok":
                return problem(self, 404, NOT_VISIBLE)
            return self.json(present(person_id, answer.shown, reader))

    class BreakGlassPage(View):
        """``POST /v1/people/{person_id}/break-glass``: read a person the caller's
        organisation is not involved with, for a coded and written reason."""

        @route_to_owner(hub, hub.views, match_info="person_id", max_body_bytes=BODY_MAX_BYTES)
        async def post(self, request: Request, person_id: str) -> Response:
            known = await practitioner(hub, self, request, BREAK_GLASS, person_id)
            if not isinstance(known, tuple):
                return known  # refused
            user, reader = known
            try:
                reason_code = reason_code_of(await read_signed_body(request, BODY_MAX_BYTES))
            except BadBreakGlass as exc:
                return problem(self, exc.status, exc.title)
            shown = shown_to(hub, reader, view_of(hub, person_id))
            if not shown:
                await audit(user, person_id, "not-found", BREAK_GLASS)
                return problem(self, 404, "no person with that id is visible to you")
            audit_id, now = str(uuid.uuid4()), utc_now()
            # The owners' record first: a read they cannot see is never answered.
            await break_glass.record(
                reads_for(
                    owners(shown, reader),
                    audit_id=audit_id,
                    at=now,
                    actor=user.id,
                    actor_partner=reader.partner,
                    person_id=person_id,
                    reason_code=reason_code,
                )
            )
            await audit(user, person_id, "ok", BREAK_GLASS, audit_id, data_owners(shown))
            body = present(person_id, shown, reader)
            body["break_glass"] = {"audit_id": audit_id, "reason_code": reason_code}
            return self.json(body)

    class PartnerBreakGlassPage(View):
        """``GET /v1/partners/{partner_id}/break-glass``: break-glass reads of the
        partner's data, for that partner's practitioners."""

        async def get(self, request: Request, partner_id: str) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if user.role is not Role.PRACTITIONER or user.partner != partner_id:
                await audit(user, None, "denied", BREAK_GLASS_LIST)
                return problem(
                    self, 403, "only that partner's practitioners see its break-glass reads"
                )
            reads = await break_glass.of_owner(partner_id)
            await audit(user, None, "ok", BREAK_GLASS_LIST)
            shown = [read.model_dump(mode="json", exclude={"owner"}) for read in reads]
            return self.json({"partner_id": partner_id, "reads": shown})

    app.page("/v1/people/{person_id}")(PersonPage)
    app.page("/v1/people/{person_id}/break-glass")(BreakGlassPage)
    app.page("/v1/partners/{partner_id}/break-glass")(PartnerBreakGlassPage)
