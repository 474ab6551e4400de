"""The stewards' web page, served by every worker under ``/steward``.

A steward (or an admin) signs in by pasting their token once, as on the practitioners'
page (``hub.practitioner_session``: an HttpOnly, SameSite=Strict cookie from then on; a
practitioner's or a partner's token is refused in words), then sees the place: people by
need domain, area by area and week by week; which needs come together in one person; the
flows between services in a window the steward chooses (``GET /v1/flows``'s answer,
``hub.steward_flows``); each partner's freshness and books; and the
collective responses (``hub.responses``): each with its pattern before and after beside
comparison areas, and the alert feedback of its rules; a form records a new one (the
session's CSRF token and a same-origin post, as the sign-out form; the one path the API
takes too, ``hub.responses_api.record_response``).

Every number on the page has been through disclosure control before it reaches it: the
patterns are ``GET /v1/patterns``'s cells as published on ``hub.patterns`` (suppressed
and rounded by the patterns stage; who may see them is the API's rule,
``hub.patterns_api.refusal``), and the books are each put through the same rule here
(``hub.disclosure``); the flows are ``GET /v1/flows``'s answer from the same cells.
``hub.steward_charts`` and ``hub.steward_flows`` only re-arrange them; nothing sums them.

The shell and a table for every chart are server-rendered (the numbers are readable
without JavaScript or a canvas); ``static/steward.js`` draws the charts with the vendored
Apache ECharts (``static/vendor/``) from ``/steward/data``, the same numbers as JSON.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, cast

from aiohttp import web
from faust.web import Request, Response, View
from pydantic import ValidationError

from hub._http import RequestRefused, problem
from hub._pages import HEADERS, PageSessions, page, read_form, see_other
from hub.app import Hub
from hub.disclosure import BASE, RULE, THRESHOLD, round_count
from hub.errors import BrokerError
from hub.flows_api import flows_answer, parse_flow_filters
from hub.models import ResponseKind
from hub.pattern_book import pattern_book
from hub.patterns_api import Filters, answer, refusal
from hub.practitioner_session import Session
from hub.responses import ResponseBody
from hub.responses_api import evaluate, record_response, responses_of
from hub.routing import PeerUnavailable
from hub.serde import validation_errors
from hub.steward_charts import (
    co_occurrence,
    health,
    pattern_choices,
    response_chart,
    trends,
)
from hub.steward_flows import flow_section
from hub.users import User
from hub.web import place_books

__all__ = ["install_steward_page"]

ROOT = "/steward"
SIGN_IN = f"{ROOT}/sign-in"
SIGN_IN_ACTION = "steward.sign-in"
COOKIE = "placehub_steward_session"  # its own name: a practitioner's session is not one
STATIC = {  # name in the URL: (path under hub/static, content type)
    "steward.css": ("steward.css", "text/css"),
    "steward.js": ("steward.js", "text/javascript"),
    "echarts.min.js": ("vendor/echarts.min.js", "text/javascript"),
}
TRY_AGAIN = "The hub could not gather the place's numbers just now. Please try again."
FRESHNESS = "placehub_partner_last_event_timestamp_seconds"
RESPONSES = f"{ROOT}/responses"
KINDS = [kind.value for kind in ResponseKind]
FLOWS_FIELD = "flows"  # the query's field naming the flows' window (granularity|date)
_FORM_FIELD = {"area_codes": "areas", "granularity": "pattern", "measure": "pattern",
               "combination_code": "pattern"}  # fmt: skip


def _freshness(hub: Hub) -> dict[str, float]:
    """When this worker's gate last took each partner's record (Unix time)."""
    found = {}
    for partner in hub.partners:
        at = hub.metrics.registry.get_sample_value(FRESHNESS, {"partner": partner.id})
        if at is not None:
            found[partner.id] = at
    return found


async def dashboard(hub: Hub, user: User, flows_window: str | None = None) -> dict[str, Any]:
    """Everything the page shows, already disclosure-controlled: the rule, the trend
    charts, the co-occurrence matrix, the flows in ``flows_window`` (``granularity|date``;
    the latest week if it names none published), each partner's health, the responses
    with their charts and feedback, and the patterns a response can address. The patterns
    and flows are what ``GET /v1/patterns`` and ``GET /v1/flows`` answer from one read of
    the published cells (BrokerError if they, the responses or the feedback cannot be
    read); PeerUnavailable if a worker does not give its share of the books."""
    cells = await pattern_book(hub).current()
    patterns = answer(cells, Filters())
    flows = flows_answer(cells, parse_flow_filters({}))
    books = await place_books(hub, user)
    found = await responses_of(hub)
    shown = sorted(found.values(), key=lambda r: (r.from_date, r.response_id), reverse=True)
    evaluated = await evaluate(hub, shown, found, patterns["cells"])
    return {
        "disclosure": {"rule": RULE, "threshold": THRESHOLD, "base": BASE},
        "trends": trends(patterns),
        "co_occurrence": co_occurrence(patterns),
        "flows": flow_section(flows, flows_window),
        "health": health(books, _freshness(hub), time.time(), round_count),
        "responses": [
            {"response": e["response"], "chart": response_chart(e), "feedback": e["feedback"]}
            for e in evaluated
        ],
        "pattern_choices": pattern_choices(patterns),
        "response_kinds": KINDS,
    }


def response_form(fields: Mapping[str, str]) -> ResponseBody:
    """The response a steward's form describes (``pattern`` is ``granularity|measure|
    combination``, ``areas`` codes separated by spaces or commas); ValidationError naming
    the body's fields (``form_errors`` turns them into the form's)."""
    pattern = [*fields.get("pattern", "").split("|", 2), "", ""][:3]
    return ResponseBody.model_validate(
        {
            "title": fields.get("title", "").strip(),
            "description": fields.get("description", "").strip(),
            "kind": fields.get("kind", ""),
            "area_codes": [a for a in re.split(r"[\s,]+", fields.get("areas", "")) if a],
            "from_date": fields.get("from_date") or None,
            "until_date": fields.get("until_date") or None,
            "granularity": pattern[0],
            "measure": pattern[1],
            "combination_code": pattern[2],
        }
    )


def form_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A refused form's errors by the form's own field names, with the rule (no value)."""
    found = []
    for pointer, message in validation_errors(exc):
        field = pointer.strip("/").split("/")[0]
        found.append({"field": _FORM_FIELD.get(field, field), "message": message})
    return found


def install_steward_page(hub: Hub) -> None:
    """Add the stewards' page (sign-in, sign-out, the page, its data and assets) to the
    web server."""
    pages = PageSessions(hub, ROOT, COOKIE, "system stewards", SIGN_IN_ACTION, refusal)
    static = files("hub") / "static"
    assets = {
        name: static.joinpath(*path.split("/")).read_bytes() for name, (path, _) in STATIC.items()
    }

    def sign_in_page(view: View, status: int, error: str | None) -> Response:
        return page(view, "steward_sign_in.html", status, title="Sign in", error=error)

    def problem_page(
        view: View, signed: tuple[User, Session], status: int, title: str, detail: str
    ) -> Response:
        user, session = signed
        return page(view, "steward_problem.html", status, title=title, detail=detail, user=user,
                    csrf=session.csrf)  # fmt: skip

    class SignInPage(View):
        """``/steward/sign-in``: the form (GET) and the token traded for a session."""

        async def get(self, request: Request) -> Response:
            if pages.signed_in(request) is not None:
                return see_other(self, ROOT)
            return sign_in_page(self, 200, None)

        async def post(self, request: Request) -> Response:
            try:
                return await pages.open(self, request)
            except RequestRefused as exc:
                return sign_in_page(self, exc.status, exc.title)

    class SignOutPage(View):
        """``POST /steward/sign-out``: end the session and forget the cookie."""

        async def post(self, request: Request) -> Response:
            try:
                return await pages.close(self, request, "The sign-out form has expired.")
            except RequestRefused as exc:
                return sign_in_page(self, exc.status, exc.title)

    class DashboardPage(View):
        """``GET /steward``: the place's patterns, flows, health and responses."""

        async def get(self, request: Request) -> Response:
            signed = pages.signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            user, session = signed
            try:
                shown = await dashboard(hub, user, request.query.get(FLOWS_FIELD))
            except (BrokerError, PeerUnavailable):
                return problem_page(self, signed, 503, "Please try again", TRY_AGAIN)
            return page(self, "steward.html", title="The place", user=user, csrf=session.csrf,
                        **shown)  # fmt: skip

    class ResponsesForm(View):
        """``POST /steward/responses``: record a response from the page's form (then back
        to the page), or the page again with the form's errors (422)."""

        async def post(self, request: Request) -> Response:
            signed = pages.signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            user, session = signed
            try:
                fields = await read_form(cast(web.Request, request))
            except RequestRefused as exc:
                return problem_page(self, signed, exc.status, "Not recorded", exc.title)
            if not session.allows(fields.get("csrf")):
                detail = "The form has expired; open the page again and send it again."
                return problem_page(self, signed, 403, "Not recorded", detail)
            try:
                body = response_form(fields)
            except ValidationError as exc:
                form = {"errors": form_errors(exc), "values": fields}
                try:
                    shown = await dashboard(hub, user)
                except (BrokerError, PeerUnavailable):
                    return problem_page(self, signed, 503, "Please try again", TRY_AGAIN)
                return page(self, "steward.html", 422, title="The place", user=user,
                            csrf=session.csrf, form=form, **shown)  # fmt: skip
            response = await record_response(hub, user, body)
            return see_other(self, f"{ROOT}#response-{response.response_id}")

    class DataPage(View):
        """``GET /steward/data``: the page's numbers as JSON, for its charts (401 without a
        session: a script cannot follow a sign-in form)."""

        async def get(self, request: Request) -> Response:
            signed = pages.signed_in(request)
            if signed is None:
                return problem(self, 401, "sign in at /steward/sign-in first")
            try:
                shown = await dashboard(hub, signed[0], request.query.get(FLOWS_FIELD))
                return self.json(shown, headers=HEADERS)
            except (BrokerError, PeerUnavailable):
                return problem(self, 503, TRY_AGAIN)

    class StaticFile(View):
        """``GET /steward/static/{name}``: the page's stylesheet, script and ECharts."""

        async def get(self, request: Request, name: str) -> Response:
            if name not in assets:
                return self.html("", status=404, headers=HEADERS)
            cache = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
            return self.bytes(assets[name], content_type=STATIC[name][1], headers=cache)

    hub.app.page(ROOT)(DashboardPage)
    hub.app.page(SIGN_IN)(SignInPage)
    hub.app.page(f"{ROOT}/sign-out")(SignOutPage)
    hub.app.page(f"{ROOT}/data")(DataPage)
    hub.app.page(RESPONSES)(ResponsesForm)
    hub.app.page(f"{ROOT}/static/{{name}}")(StaticFile)
