"""The practitioners' web page, served by every worker under ``/practitioner``.

A practitioner signs in by pasting their token once (``hub.practitioner_session``: an
HttpOnly, SameSite=Strict cookie from then on), then sees their organisation's alert inbox,
an alert's explanation with feedback buttons, and a person's timeline. Each page calls the
same functions as the JSON API, so the page can show no more than the API would: the inbox
is ``hub.alerts_api.gather``, feedback is ``hub.feedback.give_feedback``, the timeline is
``hub.practitioner_timeline`` (the people API's read). Every view of person data is audited
before the page goes. Pages are server-rendered (``hub.practitioner_render``) and work
without JavaScript; one small script (``static/live.js``) adds new alerts to the inbox as
they arrive.

Forms carry the session's CSRF token and must come from the page's own origin; answers
carry a strict Content-Security-Policy (no inline script) and are never cached
(``hub._pages``, shared with the stewards' page).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, cast

from aiohttp import web
from faust.web import Request, Response, View
from pydantic import ValidationError

from hub._http import RequestRefused
from hub._pages import HEADERS, PageSessions, page, read_form, see_other
from hub.access import Reader, refusal
from hub.alert_status import DEFAULT_SHOWN
from hub.alert_stream import stream_alerts
from hub.alerts_api import ALERT_VIEW, INBOX_MAX, Unanswered, gather, owners_of
from hub.app import Hub
from hub.audit import write_audit
from hub.feedback import FeedbackBody, NotTold, give_feedback
from hub.practitioner_render import FEEDBACK_LABELS
from hub.practitioner_session import COOKIE, Session
from hub.practitioner_timeline import TimelineUnavailable, read_timeline
from hub.serde import validation_errors
from hub.users import User

__all__ = ["install_practitioner_page"]

ROOT = "/practitioner"
SIGN_IN = f"{ROOT}/sign-in"
SIGN_IN_ACTION = "practitioner.sign-in"
STATIC = {"page.css": "text/css", "live.js": "text/javascript"}
TRY_AGAIN = "Another worker of the hub did not answer. Please try again in a moment."


class _Signed:
    """A signed-in request: the practitioner, their reader and their session."""

    def __init__(self, user: User, session: Session) -> None:
        self.user, self.session, self.reader = user, session, Reader.of(user)

    def values(self) -> dict[str, Any]:
        return {"user": self.user, "csrf": self.session.csrf}


def install_practitioner_page(hub: Hub) -> None:
    """Add the practitioners' page (sign-in, inbox, alert, timeline, stream) to the web
    server."""
    pages = PageSessions(hub, ROOT, COOKIE, "practitioners", SIGN_IN_ACTION, refusal)
    rule_titles = {rule.code: rule.title for rule in hub.rules}
    assets = {name: (files("hub") / "static" / name).read_bytes() for name in STATIC}

    def problem_page(
        view: View, signed: _Signed | None, status: int, title: str, detail: str
    ) -> Response:
        values = signed.values() if signed else {}
        return page(view, "problem.html", status, title=title, detail=detail, **values)

    def signed_in(request: Request) -> _Signed | None:
        found = pages.signed_in(request)
        return _Signed(*found) if found else None

    async def inbox_of(signed: _Signed) -> list[dict[str, Any]]:
        return await gather(hub, signed.user, signed.reader)

    async def told(view: View, signed: _Signed, alert_id: str) -> dict[str, Any] | Response:
        """The alert if the practitioner's organisation was told of it (audited), else the
        page saying why not."""
        try:
            alert = next((a for a in await inbox_of(signed) if a["alert_id"] == alert_id), None)
        except Unanswered:
            return problem_page(view, signed, 503, "Please try again", TRY_AGAIN)
        if alert is None:
            detail = "No alert with that id was sent to your organisation."
            return problem_page(view, signed, 404, "Alert not found", detail)
        owners = owners_of(alert)
        await write_audit(hub, signed.user, alert["person_id"], "ok", ALERT_VIEW, owners=owners)
        return alert

    def alert_page(view: View, signed: _Signed, alert: dict[str, Any], **values: Any) -> Response:
        title = rule_titles.get(alert["rule"], alert["rule"])
        values.setdefault("recorded", None)
        values.setdefault("error", None)
        status = values.pop("status", 200)
        return page(
            view, "alert.html", status, alert=alert, rule_title=title, **signed.values(), **values
        )

    class SignInPage(View):
        """``/practitioner/sign-in``: the form (GET) and the token traded for a session."""

        async def get(self, request: Request) -> Response:
            if signed_in(request) is not None:
                return see_other(self, ROOT)
            return page(self, "sign_in.html", title="Sign in", error=None)

        async def post(self, request: Request) -> Response:
            try:
                return await pages.open(self, request)
            except RequestRefused as exc:
                return page(self, "sign_in.html", exc.status, title="Sign in", error=exc.title)

    class SignOutPage(View):
        """``POST /practitioner/sign-out``: end the session and forget the cookie."""

        async def post(self, request: Request) -> Response:
            try:
                return await pages.close(self, request, "the form has expired")
            except RequestRefused as exc:
                return problem_page(self, signed_in(request), exc.status, "Not signed out",
                                    exc.title)  # fmt: skip

    class InboxPage(View):
        """``GET /practitioner``: the alerts the practitioner's organisation is told of."""

        async def get(self, request: Request) -> Response:
            signed = signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            try:
                found = await gather(hub, signed.user, signed.reader, statuses=DEFAULT_SHOWN)
            except Unanswered:
                return problem_page(self, signed, 503, "Please try again", TRY_AGAIN)
            shown = found[:INBOX_MAX]
            for alert in shown:
                owners = owners_of(alert)
                await write_audit(
                    hub, signed.user, alert["person_id"], "ok", ALERT_VIEW, owners=owners
                )
            return page(
                self, "inbox.html", title="Alerts", alerts=shown, truncated=len(found) > INBOX_MAX,
                rule_titles=rule_titles, **signed.values(),
            )  # fmt: skip

    class AlertPage(View):
        """``GET /practitioner/alerts/{alert_id}``: why the alert was raised, and feedback."""

        async def get(self, request: Request, alert_id: str) -> Response:
            signed = signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            alert = await told(self, signed, alert_id)
            if not isinstance(alert, dict):
                return alert
            recorded = cast(web.Request, request).query.get("recorded")
            recorded = recorded if recorded in FEEDBACK_LABELS else None
            return alert_page(self, signed, alert, title="Alert", recorded=recorded)

    class FeedbackForm(View):
        """``POST /practitioner/alerts/{alert_id}/feedback``: a feedback button pressed."""

        async def post(self, request: Request, alert_id: str) -> Response:
            signed = signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            try:
                fields = await read_form(cast(web.Request, request))
            except RequestRefused as exc:
                return problem_page(self, signed, exc.status, "Feedback not recorded", exc.title)
            if not signed.session.allows(fields.get("csrf")):
                detail = "The form has expired; open the alert again and press the button again."
                return problem_page(self, signed, 403, "Feedback not recorded", detail)
            try:
                body = FeedbackBody.model_validate(
                    {
                        "outcome": fields.get("outcome"),
                        "reason_code": fields.get("reason_code") or None,
                    }
                )
            except ValidationError as exc:
                alert = await told(self, signed, alert_id)
                if not isinstance(alert, dict):
                    return alert
                error = "; ".join(f"{p.strip('/')}: {m}" for p, m in validation_errors(exc))
                return alert_page(self, signed, alert, title="Alert", error=error, status=422)
            try:
                await give_feedback(hub, signed.user, alert_id, body)
            except Unanswered:
                return problem_page(self, signed, 503, "Please try again", TRY_AGAIN)
            except NotTold:
                detail = "No alert with that id was sent to your organisation."
                return problem_page(self, signed, 404, "Alert not found", detail)
            return see_other(self, f"{ROOT}/alerts/{alert_id}?recorded={body.outcome.value}")

    class PersonPage(View):
        """``GET /practitioner/people/{person_id}``: the person's timeline, as the API
        shows it to the practitioner."""

        async def get(self, request: Request, person_id: str) -> Response:
            signed = signed_in(request)
            if signed is None:
                return see_other(self, SIGN_IN)
            try:
                person = await read_timeline(hub, signed.user, signed.reader, person_id)
            except TimelineUnavailable:
                return problem_page(self, signed, 503, "Please try again", TRY_AGAIN)
            if person is None:
                detail = (
                    "No person with that id is visible to you: your organisation must be "
                    "involved with them."
                )
                return problem_page(self, signed, 404, "Person not found", detail)
            return page(self, "person.html", title="Timeline", person=person, **signed.values())

    class StreamPage(View):
        """``GET /practitioner/stream``: the inbox's live update (``hub.alert_stream``),
        for the session's practitioner; 401 without one (a stream cannot show a form)."""

        async def get(self, request: Request) -> Response:
            signed = signed_in(request)
            if signed is None:
                return self.html("", status=401, headers=HEADERS)
            return cast(Response, await stream_alerts(hub, request, signed.user))

    class StaticFile(View):
        """``GET /practitioner/static/{name}``: the page's stylesheet and script."""

        async def get(self, request: Request, name: str) -> Response:
            if name not in assets:
                return self.html("", status=404, headers=HEADERS)
            cache = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
            return self.bytes(assets[name], content_type=STATIC[name], headers=cache)

    hub.app.page(ROOT)(InboxPage)
    hub.app.page(SIGN_IN)(SignInPage)
    hub.app.page(f"{ROOT}/sign-out")(SignOutPage)
    hub.app.page(f"{ROOT}/alerts/{{alert_id}}")(AlertPage)
    hub.app.page(f"{ROOT}/alerts/{{alert_id}}/feedback")(FeedbackForm)
    hub.app.page(f"{ROOT}/people/{{person_id}}")(PersonPage)
    hub.app.page(f"{ROOT}/stream")(StreamPage)
    hub.app.page(f"{ROOT}/static/{{name}}")(StaticFile)
