"""A person's timeline for the practitioners' page, exactly as ``GET /v1/people/{id}``
gives it to the same practitioner.

A view lives on the worker owning the person's partition. Here, the read is the people
API's own (``hub.people_api.answer_for``, then ``hub.access.present``), audited
``person.read`` with its data owners; on another worker, that worker's
``GET /v1/people/{id}`` answers (and audits), asked with a worker assertion for the
practitioner, never their token (``hub.routing``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from yarl import URL

from hub.access import Reader, present
from hub.app import Hub
from hub.audit import write_audit
from hub.people_api import READ, answer_for
from hub.routing import PeerUnavailable, peers
from hub.users import User

__all__ = ["TimelineUnavailable", "read_timeline"]


class TimelineUnavailable(Exception):
    """Raised when the worker owning the person's view cannot answer (rebalancing, or it
    did not answer); the page asks the practitioner to try again."""


async def read_timeline(
    hub: Hub, user: User, reader: Reader, person_id: str
) -> dict[str, Any] | None:
    """The person's view as ``reader`` may see it, or None where the API answers 404 (not
    known, or not visible to them); audited like the API's read."""
    try:
        owner = str(hub.app.router.key_store(hub.views.name, person_id)).rstrip("/")
    except KeyError:
        raise TimelineUnavailable("no worker owns this person's view yet") from None
    here = peers(hub)
    if _host_port(owner) == _host_port(here.own_url):
        return await _read_here(hub, user, reader, person_id)
    try:
        reply = await here.call(owner, "GET", f"/v1/people/{quote(person_id, safe='')}", user)
    except PeerUnavailable as exc:
        raise TimelineUnavailable(str(exc)) from None
    if reply.status == 404:
        return None
    if reply.status != 200:
        raise TimelineUnavailable(f"the owning worker answered {reply.status}")
    found: dict[str, Any] = json.loads(reply.body)
    return found


async def _read_here(hub: Hub, user: User, reader: Reader, person_id: str) -> dict[str, Any] | None:
    """The people API's read on this worker (``PersonPage.get`` without the HTTP)."""
    answer = answer_for(hub, reader, person_id)
    await write_audit(hub, user, person_id, answer.outcome, READ, owners=answer.owners)
    return present(person_id, answer.shown, reader) if answer.outcome == "ok" else None


def _host_port(url: str) -> tuple[str | None, int | None]:
    """A worker's address as Faust compares them (host and port)."""
    parsed = URL(url)
    return parsed.host, parsed.port
