"""The check every person-data endpoint starts with: who is asking, and may their role
read person data at all (``hub.access.refusal``)?

One function, so the inbox, a status change, a lookup and a person read refuse alike: 401
without a known caller, 403 for a role that reads no person data, audited as ``denied``
when the endpoint names the action (a refused attempt at person data is itself a fact a
data owner may ask about). What a reader may then see is ``hub.access``'s business.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from hub._http import problem
from hub.access import Reader, refusal
from hub.app import Hub
from hub.audit import write_audit
from hub.routing import caller
from hub.users import User

__all__ = ["TOKEN_REQUIRED", "practitioner"]

TOKEN_REQUIRED = "a valid bearer token is required"


async def practitioner(
    hub: Hub,
    view: View,
    request: Request | None,
    action: str | None = None,
    person_id: str | None = None,
    user: User | None = None,
) -> tuple[User, Reader] | Response:
    """The user reading and their reader, or the reply refusing them (module docstring).

    ``user`` is the caller when the endpoint already knows it (a worker asking for a user);
    else it is read from ``request``'s token.
    """
    if user is None and request is not None:
        user = caller(hub, request)
    if user is None:
        return problem(view, 401, TOKEN_REQUIRED)
    refused = refusal(user)
    if refused is not None:
        if action is not None:
            await write_audit(hub, user, person_id, "denied", action)
        return problem(view, 403, refused)
    return user, Reader.of(user)
