"""HTTP ingest: ``POST /v1/events`` for partners whose systems speak HTTP.

The body is one event, or a JSON array of them, in the wire form ``WireEvent`` below.
Identifiers arrive **already pseudonymised** (``subject.tokens``, made with the SDK's
``connectors.token`` and the place key): pseudonymisation happens at source, so raw
identifiers never leave the partner, not even to the hub. A raw NHS number in
``tokens`` fails the token pattern and is rejected without being echoed.

Replies (``application/json``):

- ``202`` ``{"event_ids": [...]}`` only after Kafka acknowledged every event (acks=all).
  Re-sending an ``event_id`` is harmless: it is acknowledged again, and the hub counts
  each id once.
- ``400`` the body is not JSON · ``401`` no valid token · ``403`` not a partner token, or
  an event names another partner · ``413`` body or array too large · ``422`` one or more
  events are invalid: ``errors`` lists ``{"pointer", "message"}`` (RFC 6901 pointers
  into the body) and **nothing** from the request is published, so fix and resend all.
- ``503`` with ``Retry-After``: Kafka did not acknowledge in time; nothing is lost by
  resending the same events.

Every reply carries ``counts`` (read, published, rejected) so ``read = published +
rejected`` holds per request; the same counts go to Prometheus by partner.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from faust.web import Request, Response, View
from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.delivery import Delivery
from connectors.publisher import draft_errors, frame_event, require_basis
from hub.app import Hub
from hub.config import Settings
from hub.errors import BrokerError, EventRejected
from hub.models import LawfulBasis, PartnerEvent, Payload, Subject, utc_now
from hub.serde import Serde
from hub.topics import Topics
from hub.users import Role, User

__all__ = ["EventIngest", "IngestReply", "WireEvent", "install_ingest"]

Uuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


class WireEvent(BaseModel):
    """One event as a partner posts it: the ``PartnerEvent`` minus what the hub fills in.

    ``partner_id`` defaults to the caller's partner; ``event_type`` to the payload's;
    ``recorded_at`` is set by the hub.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Uuid
    partner_id: str | None = None
    source_system: str
    source_ref: str
    event_type: str | None = None
    occurred_at: AwareDatetime
    subject: Subject
    basis: LawfulBasis | None = None
    payload: Payload


@dataclass
class IngestReply:
    """What to answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    """A request refused as a whole (not a HubError: it never leaves this module)."""

    def __init__(self, status: int, title: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(title)
        self.status, self.title, self.errors = status, title, list(errors)


class EventIngest:
    """The service behind ``POST /v1/events``: parse, check, encode, deliver, reply."""

    def __init__(self, settings: Settings, serde: Serde, partners: set[str]) -> None:
        self.settings = settings
        self.serde = serde
        self.partners = partners
        self.topics = Topics(settings.topic_prefix)
        self.delivery = Delivery(settings, attempts=1, timeout_ms=settings.ingest_timeout_ms)

    async def submit(self, user: User | None, body: bytes | None) -> IngestReply:
        """Answer one request; ``body`` is None when it was over the size limit."""
        read = 0
        try:
            partner = self._partner_of(user)
            if body is None:
                raise _Refused(413, f"the body is over {self.settings.ingest_max_body_bytes} bytes")
            items, single = self._items(body)
            read = len(items)
            outgoing = [
                frame_event(self.serde, self.topics, event, self.settings.max_event_bytes)
                for event in self._events(items, single, partner)
            ]
            await asyncio.to_thread(self.delivery.deliver, outgoing)
        except _Refused as refused:
            return _problem(refused.status, refused.title, read, refused.errors)
        except EventRejected as exc:  # too large once encoded
            return _problem(422, "an event was rejected", read, exc.errors)
        except BrokerError:
            reply = _problem(503, "Kafka did not acknowledge in time; resend later", read)
            reply.headers["Retry-After"] = str(self.settings.ingest_retry_after_s)
            return reply
        ids = [item.item_id for item in outgoing]
        return IngestReply(202, {"event_ids": ids, "counts": _counts(read, len(ids))})

    def _partner_of(self, user: User | None) -> str:
        if user is None:
            raise _Refused(401, "a valid bearer token is required")
        if user.role is not Role.PARTNER or user.partner is None:
            raise _Refused(403, f"role {user.role.value} may not publish events")
        if user.partner not in self.partners:
            raise _Refused(403, f"partner {user.partner} is not a partner of this place")
        return user.partner

    def _items(self, body: bytes) -> tuple[list[Any], bool]:
        try:
            parsed = json.loads(body)
        except UnicodeDecodeError:
            raise _Refused(400, "the body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}: {exc.msg}"
            raise _Refused(400, f"the body is not valid JSON at {where}") from None
        if isinstance(parsed, dict):
            return [parsed], True
        if not isinstance(parsed, list):
            raise _Refused(422, "invalid body", [("", "expected an event object or an array")])
        if not parsed:
            raise _Refused(422, "invalid body", [("", "the array is empty")])
        if len(parsed) > self.settings.ingest_max_items:
            raise _Refused(413, f"more than {self.settings.ingest_max_items} events in one array")
        return parsed, False

    def _events(self, items: list[Any], single: bool, partner: str) -> list[PartnerEvent]:
        """Every item as a wire event; all problems at once (422), or a 403 for a foreign one."""
        events: list[PartnerEvent] = []
        errors: list[tuple[str, str]] = []
        for index, item in enumerate(items):
            prefix = "" if single else f"/{index}"
            try:
                events.append(self._event(item, partner))
            except EventRejected as exc:
                errors.extend((prefix + pointer, message) for pointer, message in exc.errors)
            except PermissionError as exc:
                raise _Refused(403, str(exc), [(prefix + "/partner_id", str(exc))]) from None
        if errors:
            raise _Refused(422, f"{len(errors)} problem(s); nothing was published", errors)
        return events

    def _event(self, item: Any, partner: str) -> PartnerEvent:
        if not isinstance(item, dict):
            raise EventRejected([("", "expected an event object")])
        if item.get("partner_id", partner) != partner:
            raise PermissionError(f"a {partner} token may only publish as {partner}")
        require_basis(item.get("basis"))
        try:
            wire = WireEvent.model_validate(item)
        except ValidationError as exc:
            raise EventRejected(draft_errors(exc)) from None
        fields = wire.model_dump(exclude={"partner_id", "event_type"})
        try:
            return PartnerEvent.model_validate(
                {
                    **fields,
                    "partner_id": partner,
                    "event_type": wire.event_type or wire.payload.event_type,
                    "recorded_at": utc_now(),
                }
            )
        except ValidationError as exc:
            raise EventRejected(draft_errors(exc)) from None

    def close(self) -> None:
        """Close the producer."""
        self.delivery.close()


def _counts(read: int, published: int) -> dict[str, int]:
    return {"read": read, "published": published, "rejected": read - published}


def _problem(
    status: int, title: str, read: int, errors: Sequence[tuple[str, str]] = ()
) -> IngestReply:
    body: dict[str, Any] = {"status": status, "title": title, "counts": _counts(read, 0)}
    if errors:
        body["errors"] = [{"pointer": pointer, "message": message} for pointer, message in errors]
    return IngestReply(status, body)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    stream: Any = request.content  # type: ignore[attr-defined]  # aiohttp's request
    while chunk := await stream.read(65_536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def install_ingest(hub: Hub) -> EventIngest:
    """Add ``POST /v1/events`` to the hub's web server; returns the service behind it."""
    ingest = EventIngest(hub.settings, hub.serde, {partner.id for partner in hub.partners})
    items = Counter(
        "placehub_ingest_items",
        "Events posted to /v1/events, by partner and outcome (published or rejected).",
        ["partner", "outcome"],
        registry=hub.metrics.registry,
    )

    class EventsPage(View):
        """``POST /v1/events``: a partner publishes one event or an array of them."""

        async def post(self, request: Request) -> Response:
            user = hub.users.authenticate(request.headers.get("Authorization"))
            body = await _read_body(request, hub.settings.ingest_max_body_bytes)
            reply = await ingest.submit(user, body)
            if user is not None and user.partner is not None:
                counts = reply.body["counts"]
                items.labels(user.partner, "published").inc(counts["published"])
                items.labels(user.partner, "rejected").inc(counts["rejected"])
            return self.json(reply.body, status=reply.status, headers=reply.headers)

    hub.app.page("/v1/events")(EventsPage)
    return ingest
