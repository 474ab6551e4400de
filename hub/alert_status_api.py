"""``POST /v1/alerts/{alert_id}/status``: a practitioner sets where an alert stands in their
organisation's inbox (``hub.alert_status``).

Only for an alert their organisation was told of (404 otherwise, as for feedback); the
``AlertStatus`` is in Kafka before the answer, and the change is audited (``alert.status``).
"""

from __future__ import annotations

from faust.web import Request, Response, View
from pydantic import BaseModel, ConfigDict

from hub._http import JsonLimits, json_body, problem
from hub.alert_status import (
    InboxStatus,
    prepare_status_topic,
    record_for,
    status_book,
    status_key,
    status_topic,
)
from hub.alerts_api import Unanswered, gather
from hub.app import Hub
from hub.audit import write_audit
from hub.batch import partition_for
from hub.models import utc_now
from hub.readers import practitioner
from hub.runtime import producer_of

__all__ = ["StatusBody", "install_alert_status_api"]

BODY_MAX_BYTES = 1024
_LIMITS = JsonLimits(max_depth=2, max_values=4)
ALERT_STATUS = "alert.status"


class StatusBody(BaseModel):
    """What a practitioner sends: the status the alert now has for their organisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: InboxStatus


def install_alert_status_api(hub: Hub) -> None:
    """Create the status topic and add the endpoint; stop the statuses' reader with the
    web server."""
    prepare_status_topic(hub)
    topic = status_topic(hub)

    status_book(hub).close_with_web_server()

    class AlertStatusPage(View):
        """``POST /v1/alerts/{alert_id}/status``: set the alert's status for one's organisation."""

        async def post(self, request: Request, alert_id: str) -> Response:
            known = await practitioner(hub, self, request, ALERT_STATUS)
            if not isinstance(known, tuple):
                return known
            user, reader = known
            body = await json_body(self, request, StatusBody, BODY_MAX_BYTES, _LIMITS, "the status")
            if not isinstance(body, StatusBody):
                return body
            try:
                told = await gather(hub, user, reader)
            except Unanswered:
                return problem(self, 503, "the alerts could not all be gathered; try again")
            alert = next((a for a in told if a["alert_id"] == alert_id), None)
            if alert is None:
                return problem(self, 404, "no alert with that id was sent to your organisation")
            record = record_for(alert_id, reader.partner, body.status, utc_now())
            key = status_key(alert_id, reader.partner)
            value = hub.serde.encode(record, f"{topic}-value")
            partition = partition_for(key, hub.settings.partitions)
            await (await producer_of(hub.app).send(topic, value, key=key, partition=partition))
            await write_audit(hub, user, alert["person_id"], "ok", ALERT_STATUS)
            return self.json({"alert_id": alert_id, "status": body.status.value})

    hub.app.page("/v1/alerts/{alert_id}/status")(AlertStatusPage)
