"""The learning cycle's API, for stewards (and admins): collective responses and what became
of the patterns they address (``hub.responses`` has the rules).

- ``POST /v1/responses``: record one (``ResponseBody``); 201 with its id once its record is
  on ``hub.responses`` and the act audited (``response.record``).
- ``POST /v1/responses/{id}/status``: end or withdraw it (``AmendBody``; audited
  ``response.amend``): the next value under its key, with the change appended.
- ``GET /v1/responses``: every response's current value.
- ``GET /v1/responses/{id}``: the response with its evaluation: the addressed pattern's
  published cells in its areas, comparison areas and the whole place, window by window,
  and the alert feedback of the rules about the pattern's domains, before and after.

Who may: the patterns' rule (``hub.patterns_api.refusal``); 401 without a token, 403 for
another role (a refused write is audited as denied), 422 naming the field and the rule.
Everything is read from the topics at the request (``hub.keyed_read``), so an answer holds
every response recorded before it, on any worker, and survives a restart. An amendment reads
the response and writes its next value: two stewards amending one response at the same
moment on two workers may lose one change (one worker serialises its own).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time
from typing import Any

from faust.web import Request, Response, View

from hub._http import JsonLimits, json_body, problem
from hub.app import Hub
from hub.audit import write_audit
from hub.batch import partition_for
from hub.disclosure import round_count
from hub.errors import BrokerError
from hub.feedback import usefulness
from hub.keyed_read import read_all
from hub.models import AlertFeedback, CollectiveResponse, utc_now
from hub.patterns_api import Filters, patterns_for, refusal
from hub.responses import (
    AmendBody,
    ResponseBody,
    amended,
    evaluation,
    event_types_read,
    feedback_signal,
    latest,
    pattern_domains,
    recorded,
    rules_touching,
)
from hub.routing import caller
from hub.runtime import producer_of
from hub.users import User

__all__ = [
    "NoSuchResponse",
    "amend_response",
    "evaluate",
    "install_responses_api",
    "record_response",
    "responses_of",
]

BODY_MAX_BYTES = 8192
_LIMITS = JsonLimits(max_depth=3, max_values=40)
READ_TIMEOUT_S = 30.0
RECORD, AMEND = "response.record", "response.amend"
_AMENDING = asyncio.Lock()


class NoSuchResponse(LookupError):
    """Raised when no response has the id asked for (the caller answers 404)."""


async def responses_of(hub: Hub) -> dict[str, CollectiveResponse]:
    """Every response's current value, read from ``hub.responses`` to its end (BrokerError
    if it cannot be read in time)."""
    topic = hub.topics.responses
    return latest(
        await read_all(hub.settings, hub.serde, topic, CollectiveResponse, READ_TIMEOUT_S)
    )


async def _write(hub: Hub, user: User, response: CollectiveResponse, action: str) -> None:
    topic = hub.topics.responses
    key = response.response_id.encode()
    value = hub.serde.encode(response, f"{topic}-value")
    partition = partition_for(key, hub.settings.partitions)
    await (await producer_of(hub.app).send(topic, value, key=key, partition=partition))
    await write_audit(hub, user, None, "ok", action)


async def record_response(hub: Hub, user: User, body: ResponseBody) -> CollectiveResponse:
    """Record ``user``'s response: on ``hub.responses`` and audited when this returns. The
    one path for the API and the stewards' page; ``user`` must pass ``refusal``."""
    assert refusal(user) is None, "a refused user"
    response = recorded(body, str(uuid.uuid4()), user.id, utc_now())
    await _write(hub, user, response, RECORD)
    return response


async def amend_response(
    hub: Hub, user: User, response_id: str, body: AmendBody
) -> CollectiveResponse:
    """Write the response's next value (``hub.responses.amended``); NoSuchResponse, or
    ValueError naming the field and the rule."""
    assert refusal(user) is None, "a refused user"
    async with _AMENDING:
        found = (await responses_of(hub)).get(response_id)
        if found is None:
            raise NoSuchResponse(response_id)
        response = amended(found, body, user.id, utc_now())
        await _write(hub, user, response, AMEND)
    return response


async def evaluate(
    hub: Hub,
    chosen: Iterable[CollectiveResponse],
    responses: Mapping[str, CollectiveResponse],
    cells: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each ``chosen`` response with its evaluation (``hub.responses.evaluation``), against
    every response of the place, from the published patterns (``cells`` as
    ``GET /v1/patterns`` answers them, read if not given) and the alert feedback, each read
    once (BrokerError if either cannot be read)."""
    if cells is None:
        cells = (await patterns_for(hub, Filters()))["cells"]
    topic = hub.topics.alert_feedback
    verdicts = await read_all(hub.settings, hub.serde, topic, AlertFeedback, READ_TIMEOUT_S)
    rule_patterns = {rule.code: event_types_read(rule.condition) for rule in hub.rules}
    found = []
    for response in chosen:
        first = datetime.combine(response.from_date, time(), UTC)
        rules = rules_touching(
            rule_patterns, pattern_domains(response.measure, response.combination_code)
        )
        signal = feedback_signal(
            rules,
            usefulness(v for v in verdicts if v.at < first),
            usefulness(v for v in verdicts if v.at >= first),
            round_count,
        )
        found.append(evaluation(response, cells, responses.values(), signal))
    return found


def install_responses_api(hub: Hub) -> None:
    """Add the responses' endpoints to the web server."""

    async def steward(view: View, request: Request, action: str | None) -> User | Response:
        """The caller if a steward or admin, else the problem reply (a refused write
        audited as denied)."""
        user = caller(hub, request)
        if user is None:
            return problem(view, 401, "a valid bearer token is required")
        if refusal(user) is None:
            return user
        if action is not None:
            await write_audit(hub, user, None, "denied", action)
        return problem(view, 403, f"role {user.role.value} may not read or record responses")

    class ResponsesPage(View):
        """``GET /v1/responses`` (every response) and ``POST`` (record one)."""

        async def get(self, request: Request) -> Response:
            user = await steward(self, request, None)
            if not isinstance(user, User):
                return user
            try:
                found = await responses_of(hub)
            except BrokerError:
                return problem(self, 503, "the responses could not be read; try again")
            ordered = sorted(found.values(), key=lambda r: (r.from_date, r.response_id))
            return self.json({"responses": [r.model_dump(mode="json") for r in ordered]})

        async def post(self, request: Request) -> Response:
            user = await steward(self, request, RECORD)
            if not isinstance(user, User):
                return user
            body = await json_body(
                self, request, ResponseBody, BODY_MAX_BYTES, _LIMITS, "the response"
            )
            if not isinstance(body, ResponseBody):
                return body
            response = await record_response(hub, user, body)
            return self.json({"response_id": response.response_id}, status=201)

    class ResponsePage(View):
        """``GET /v1/responses/{response_id}``: one response with its evaluation."""

        async def get(self, request: Request, response_id: str) -> Response:
            user = await steward(self, request, None)
            if not isinstance(user, User):
                return user
            try:
                found = await responses_of(hub)
                if response_id not in found:
                    return problem(self, 404, "no response has that id")
                (evaluated,) = await evaluate(hub, [found[response_id]], found)
                return self.json(evaluated)
            except BrokerError:
                return problem(self, 503, "the responses could not be read; try again")

    class StatusPage(View):
        """``POST /v1/responses/{response_id}/status``: end or withdraw a response."""

        async def post(self, request: Request, response_id: str) -> Response:
            user = await steward(self, request, AMEND)
            if not isinstance(user, User):
                return user
            body = await json_body(self, request, AmendBody, 1024, _LIMITS, "the amendment")
            if not isinstance(body, AmendBody):
                return body
            try:
                response = await amend_response(hub, user, response_id, body)
            except NoSuchResponse:
                return problem(self, 404, "no response has that id")
            except ValueError as exc:
                field, rule = str(exc).split(": ", 1)
                return problem(self, 422, "the amendment is not valid", [(f"/{field}", rule)])
            except BrokerError:
                return problem(self, 503, "the responses could not be read; try again")
            return self.json(response.model_dump(mode="json"))

    hub.app.page("/v1/responses")(ResponsesPage)
    hub.app.page("/v1/responses/{response_id}")(ResponsePage)
    hub.app.page("/v1/responses/{response_id}/status")(StatusPage)
