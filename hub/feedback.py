"""Feedback on alerts: what teaches the place which alerts are worth sending.

``POST /v1/alerts/{alert_id}/feedback`` takes a practitioner's verdict on an alert their
organisation was told of (``USEFUL``, ``NOT_USEFUL``, ``ALREADY_KNOWN`` or ``ACTED``, and
an optional reason code; never free text) and writes an ``AlertFeedback`` to
``hub.alert-feedback``, keyed by alert id, before it answers (audited ``alert.feedback``).
``GET /v1/alerts/usefulness`` gives stewards each rule's usefulness by partner, from the
whole topic: the latest verdict of each partner on each alert counts once. The API and
the practitioners' page (``hub.practitioner_page``) record a verdict through one function,
``give_feedback``.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from faust.web import Request, Response, View
from pydantic import BaseModel, ConfigDict

from hub._admin import ensure_topic
from hub._http import JsonLimits, json_body, problem
from hub.access import Reader, refusal
from hub.alerts_api import Unanswered, gather
from hub.app import Hub
from hub.audit import write_audit
from hub.batch import partition_for
from hub.errors import InputError
from hub.keyed_read import read_all
from hub.models import AlertFeedback, Code, FeedbackOutcome, utc_now
from hub.routing import caller
from hub.runtime import producer_of
from hub.users import Role, User

__all__ = [
    "FeedbackBody",
    "NotTold",
    "give_feedback",
    "install_feedback",
    "usefulness",
]

BODY_MAX_BYTES = 4096
_LIMITS = JsonLimits(max_depth=4, max_values=16)
READ_TIMEOUT_S = 30.0
FEEDBACK = "alert.feedback"


class FeedbackBody(BaseModel):
    """What a practitioner sends: a verdict and, if they like, a coded reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: FeedbackOutcome
    reason_code: Code | None = None


def usefulness(feedback: Iterable[AlertFeedback]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per rule and partner: each outcome's count and the share of verdicts that were
    ``USEFUL`` or ``ACTED``, counting each partner's latest verdict on each alert once."""
    latest: dict[tuple[str, str], AlertFeedback] = {}
    for item in sorted(feedback, key=lambda f: f.at):
        latest[item.alert_id, item.partner_id] = item
    counts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for item in latest.values():
        counts[item.rule_code or "unknown"][item.partner_id][item.outcome.value] += 1
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for rule, by_partner in sorted(counts.items()):
        found[rule] = {}
        for partner, outcomes in sorted(by_partner.items()):
            total = sum(outcomes.values())
            helped = outcomes["USEFUL"] + outcomes["ACTED"]
            found[rule][partner] = {
                **{o.value: outcomes[o.value] for o in FeedbackOutcome},
                "verdicts": total,
                "share_useful": round(helped / total, 3),
            }
    return found


class NotTold(InputError):
    """Raised when feedback names an alert the practitioner's organisation was not told of
    (the caller answers 404, whether or not such an alert exists)."""


async def give_feedback(hub: Hub, user: User, alert_id: str, body: FeedbackBody) -> AlertFeedback:
    """Record ``user``'s verdict on ``alert_id``: the ``AlertFeedback`` is in
    ``hub.alert-feedback`` and the act audited (``alert.feedback``) when this returns. The
    one path for the API and the practitioners' page; ``user`` must pass ``hub.access.refusal``
    (practitioners of a partner only).
    Raises NotTold, or Unanswered if another worker did not give its share of the inbox."""
    assert refusal(user) is None and user.partner is not None, "a refused user"
    told = await gather(hub, user, Reader.of(user))
    alert = next((a for a in told if a["alert_id"] == alert_id), None)
    if alert is None:
        raise NotTold("no alert with that id was sent to the caller's organisation")
    record = AlertFeedback(
        feedback_id=str(uuid.uuid4()),
        alert_id=alert_id,
        partner_id=user.partner,
        practitioner_role=user.role.value,
        outcome=body.outcome,
        at=utc_now(),
        rule_code=alert["rule"],
        reason_code=body.reason_code,
    )
    topic = hub.topics.alert_feedback
    key = alert_id.encode()
    value = hub.serde.encode(record, f"{topic}-value")
    partition = partition_for(key, hub.settings.partitions)
    await (await producer_of(hub.app).send(topic, value, key=key, partition=partition))
    await write_audit(hub, user, alert["person_id"], "ok", FEEDBACK)
    hub.metrics.count("placehub_alert_feedback", (alert["rule"], body.outcome.value.lower()))
    return record


def install_feedback(hub: Hub) -> None:
    """Add the feedback and usefulness endpoints to the web server."""
    topic = hub.topics.alert_feedback
    ensure_topic(hub.settings, topic, partitions=hub.settings.partitions)

    class FeedbackPage(View):
        """``POST /v1/alerts/{alert_id}/feedback``: a practitioner's verdict on an alert."""

        async def post(self, request: Request, alert_id: str) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if refusal(user) is not None:
                await write_audit(hub, user, None, "denied", FEEDBACK)
                return problem(self, 403, "only practitioners give feedback on alerts")
            body = await json_body(
                self, request, FeedbackBody, BODY_MAX_BYTES, _LIMITS, "the feedback"
            )
            if not isinstance(body, FeedbackBody):
                return body
            try:
                record = await give_feedback(hub, user, alert_id, body)
            except Unanswered:
                return problem(self, 503, "another worker did not answer; try again")
            except NotTold:
                return problem(self, 404, "no alert with that id was sent to your organisation")
            return self.json({"feedback_id": record.feedback_id}, status=201)

    class UsefulnessPage(View):
        """``GET /v1/alerts/usefulness``: each rule's usefulness by partner, for stewards."""

        async def get(self, request: Request) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if user.role not in (Role.STEWARD, Role.ADMIN):
                return problem(self, 403, "stewards and admins read the rules' usefulness")
            feedback = await read_all(hub.settings, hub.serde, topic, AlertFeedback, READ_TIMEOUT_S)
            return self.json({"rules": usefulness(feedback)})

    hub.app.page("/v1/alerts/usefulness")(UsefulnessPage)
    hub.app.page("/v1/alerts/{alert_id}/feedback")(FeedbackPage)
