"""Person reads: ``GET /v1/people/{person_id}``, served by the worker that owns the view.

Every read of person data writes an ``AuditRecord`` to ``hub.audit``, whatever its outcome,
and is answered only once that record is in Kafka.
"""

from __future__ import annotations

import uuid
from typing import Any

from faust.web import Request, Response, View

from hub.app import Hub
from hub.batch import partition_for
from hub.models import AuditRecord, utc_now
from hub.runtime import producer_of
from hub.stages.view import PersonView, minimise, prune
from hub.users import Role, User
from hub.web import problem

__all__ = ["install_people_api", "view_of"]

_READERS = {Role.PRACTITIONER, Role.ADMIN}


def view_of(hub: Hub, person_id: str) -> PersonView | None:
    """The stored view of ``person_id`` (on the worker that owns it), without any entry
    past its retention (the sweep may not have run yet)."""
    stored = hub.views.get(person_id.encode())
    if not stored:
        return None
    return prune(PersonView.model_validate(stored), utc_now(), hub.ctx.retention)[0]


def install_people_api(hub: Hub) -> None:
    """Add ``GET /v1/people/{person_id}`` to the hub's Faust web server."""
    app = hub.app

    async def audit(user: User, person_id: str, outcome: str) -> None:
        record = AuditRecord(
            audit_id=str(uuid.uuid4()),
            at=utc_now(),
            actor=user.id,
            role=user.role.value,
            action="person.read",
            person_id=person_id,
            outcome=outcome,  # type: ignore[arg-type]
        )
        value = hub.serde.encode(record, f"{hub.topics.audit}-value")
        key = person_id.encode()
        partition = partition_for(key, hub.settings.partitions)
        producer = producer_of(hub.app)
        delivery = await producer.send(hub.topics.audit, value, key=key, partition=partition)
        await delivery  # the read is answered only once its audit record is in Kafka

    class PersonPage(View):
        """``GET /v1/people/{person_id}``: the view, minimised to the caller."""

        # Faust's stub types views as (view, request); match_info adds the path parameter.
        @app.table_route(table=hub.views, match_info="person_id")  # type: ignore[arg-type]
        async def get(self, request: Request, person_id: str) -> Response:
            user = hub.users.authenticate(request.headers.get("Authorization"))
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if user.role not in _READERS:
                await audit(user, person_id, "denied")
                hub.metrics.person_reads.labels("denied").inc()
                return problem(self, 403, f"role {user.role.value} may not read person views")
            view = view_of(hub, person_id)
            body: dict[str, Any] | None = None
            if view is not None:
                body = minimise(
                    view, user.partner, lambda basis: hub.agreements.visible_to(basis, user.role)
                )
            outcome = "ok" if body and body["event_count"] else "not-found"
            await audit(user, person_id, outcome)
            hub.metrics.person_reads.labels(outcome).inc()
            if outcome != "ok":
                return problem(self, 404, "no person with that id is visible to you")
            return self.json(body)

    app.page("/v1/people/{person_id}")(PersonPage)
