"""What the worker's web pages share (``hub.practitioner_page``, ``hub.steward_page``):
the security headers every answer carries, the reading of a same-origin form, and signing
in and out (``PageSessions``), so neither page's rules can drift from the other's.

Answers carry a strict Content-Security-Policy (no inline script or style, nothing from
elsewhere) and are never cached; forms must come from the page's own origin, since a
session cookie would otherwise let another site post as the signed-in user. A pasted token
is traded once for a session (``hub.practitioner_session``) whose id goes in an HttpOnly,
SameSite=Strict cookie of the page's own name and path, so one page's session is never the
other's; signing out needs the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs

from aiohttp import web
from faust.web import Request, Response, View

from hub._http import RequestRefused, read_body
from hub.app import Hub
from hub.audit import write_audit
from hub.practitioner_render import render
from hub.practitioner_session import Session, Sessions
from hub.users import User, UserDirectory

__all__ = [
    "BAD_TOKEN",
    "FORM_MAX_BYTES",
    "HEADERS",
    "PageSessions",
    "page",
    "pasted_user",
    "read_form",
    "see_other",
]

FORM_MAX_BYTES = 4096
TOKEN_MAX_CHARS = 512
BAD_TOKEN = "That token is not recognised. Check you copied all of it and paste it again."
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # Origin on forms (no-referrer sends null)
    "Cache-Control": "no-store",
}


def _same_origin(request: web.Request) -> bool:
    """Whether a form post comes from this page (the browser's Origin, where it sends one)."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


async def read_form(request: web.Request) -> dict[str, str]:
    """A url-encoded form's fields (first value each); RequestRefused if it is not one."""
    if not _same_origin(request):
        raise RequestRefused(403, "forms are accepted only from this page")
    if request.content_type != "application/x-www-form-urlencoded":
        raise RequestRefused(415, "the form must be application/x-www-form-urlencoded")
    body = await read_body(cast(Request, request), FORM_MAX_BYTES)
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused(400, "the form is not a valid url-encoded form") from None
    return {name: values[0] for name, values in fields.items()}


def pasted_user(users: UserDirectory, token: str) -> User | None:
    """The user whose token was pasted into a sign-in form, or None (empty, too long or
    not recognised)."""
    token = token.strip()
    return users.authenticate(f"Bearer {token}") if 0 < len(token) <= TOKEN_MAX_CHARS else None


def page(view: View, template: str, status: int = 200, **values: Any) -> Response:
    """``template`` rendered as the answer (no user or CSRF token unless given)."""
    values.setdefault("user", None)
    values.setdefault("csrf", None)
    return view.html(render(template, **values), status=status, headers=HEADERS)


def see_other(view: View, location: str) -> Response:
    """A 303 to ``location`` (after a form, or to the sign-in form)."""
    return view.html("", status=303, headers={**HEADERS, "Location": location})


class PageSessions:
    """One page's sign-ins: its path and cookie, who it is for (``audience``, in words)
    and why it refuses a user (``refusal``; the refusal is audited as ``action``)."""

    def __init__(
        self,
        hub: Hub,
        root: str,
        cookie: str,
        audience: str,
        action: str,
        refusal: Callable[[User], str | None],
    ) -> None:
        self.root, self.sign_in, self.cookie = root, f"{root}/sign-in", cookie
        self._hub, self._audience, self._action, self._refusal = hub, audience, action, refusal
        self._sessions = Sessions()

    def signed_in(self, request: Request) -> tuple[User, Session] | None:
        """The user and session of the request's cookie, or None (no live session, a user
        no longer in the users file, or one the page now refuses)."""
        session = self._sessions.find(cast(web.Request, request).cookies.get(self.cookie))
        user = self._hub.users.by_id(session.user_id) if session else None
        if session is None or user is None or self._refusal(user) is not None:
            return None
        return user, session

    async def open(self, view: View, request: Request) -> Response:
        """The sign-in form's token traded for a session: a 303 to the page with the
        cookie set. RequestRefused: the form's own refusal, 401 for a token not recognised,
        403 (audited) for a user the page is not for."""
        web_request = cast(web.Request, request)
        user = pasted_user(self._hub.users, (await read_form(web_request)).get("token", ""))
        if user is None:
            raise RequestRefused(401, BAD_TOKEN)
        refused = self._refusal(user)
        if refused is not None:
            await write_audit(self._hub, user, None, "denied", self._action)
            raise RequestRefused(403, f"This page is for {self._audience}: {refused}.")
        session_id, _ = self._sessions.open(user.id)
        reply = cast(web.Response, see_other(view, self.root))
        reply.set_cookie(
            self.cookie, session_id, path=self.root, httponly=True, samesite="Strict",
            secure=web_request.secure, max_age=int(self._sessions.ttl_s),
        )  # fmt: skip
        return cast(Response, reply)

    async def close(self, view: View, request: Request, expired: str) -> Response:
        """The sign-out form: the session ended and its cookie forgotten, then a 303 to the
        sign-in form. RequestRefused: the form's own refusal, or 403 with ``expired`` if
        the form is not the session's (its CSRF token)."""
        web_request = cast(web.Request, request)
        signed = self.signed_in(request)
        fields = await read_form(web_request)
        if signed is not None and not signed[1].allows(fields.get("csrf")):
            raise RequestRefused(403, expired)
        self._sessions.close(web_request.cookies.get(self.cookie))
        reply = cast(web.Response, see_other(view, self.sign_in))
        reply.del_cookie(self.cookie, path=self.root)
        return cast(Response, reply)
