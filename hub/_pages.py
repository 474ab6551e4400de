"""What the worker's web pages share (``hub.practitioner_page``, ``hub.steward_page``):
the security headers every answer carries, the reading of a same-origin form and of the
token pasted into a sign-in form.

Answers carry a strict Content-Security-Policy (no inline script or style, nothing from
elsewhere) and are never cached; forms must come from the page's own origin, since a
session cookie would otherwise let another site post as the signed-in user.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import parse_qs

from aiohttp import web
from faust.web import Request

from hub._http import RequestRefused, read_body
from hub.users import User, UserDirectory

__all__ = ["BAD_TOKEN", "FORM_MAX_BYTES", "HEADERS", "pasted_user", "read_form"]

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
