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
- ``400`` the body is not JSON, or breaks a limit: nested deeper than ``MAX_DEPTH``, an
  integer outside 64 bits, a number over 100 characters · ``401`` no valid token (checked
  before the body is read) · ``403`` not a partner token, or an event names another
  partner · ``413`` body, array or value count too large · ``415`` not UTF-8 JSON (a
  UTF-16 body, or another charset named) · ``422`` one or more events are invalid:
  ``errors`` lists ``{"pointer", "message"}`` (RFC 6901 pointers into the body; an
  unknown key is named by its position, ``/subject/<key 3>``) and **nothing** from the
  request is published, so fix and resend all. Messages name the field and the rule,
  never a value from the body.
- ``503`` with ``Retry-After``: Kafka did not acknowledge in time; nothing is lost by
  resending the same events.

Every reply carries ``counts`` (read, published, rejected) so ``read = published +
rejected`` holds per request; the same counts go to Prometheus by partner.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from faust.web import Request, Response, View
from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.delivery import Delivery
from connectors.publisher import frame_event, require_basis
from hub._http import JsonLimits, RequestRefused, check_content_type, parse_json, read_body
from hub.app import Hub
from hub.config import Settings
from hub.errors import BrokerError, EventRejected
from hub.models import LawfulBasis, PartnerEvent, Payload, Subject, utc_now
from hub.routing import caller
from hub.serde import Serde
from hub.topics import Topics
from hub.users import Role, User

__all__ = ["EventIngest", "IngestReply", "WireEvent", "install_ingest", "wire_errors"]

MAX_DEPTH = 32  # an event nests 5 deep; anything far deeper is not an event
MAX_VALUES = 100_000  # JSON values in one body (500 events of ~30 values fit easily)
MAX_ERRORS = 100  # problems listed in one 422 (the count says how many there were)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

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
    event_type: str | None = Field(default=None, max_length=64)
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
        self.limits = JsonLimits(max_depth=MAX_DEPTH, max_values=MAX_VALUES)

    def refusal(self, user: User | None) -> IngestReply | None:
        """The reply for a caller who may not publish at all (decided before any body is
        read), or None for a partner of this place."""
        try:
            self._partner_of(user)
        except _Refused as refused:
            return _problem(refused.status, refused.title, 0)
        return None

    async def submit(self, user: User | None, body: bytes) -> IngestReply:
        """Answer one request whose body was read within the size limit."""
        read = 0
        try:
            partner = self._partner_of(user)
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
            parsed = parse_json(body, self.limits)
        except RequestRefused as refused:
            raise _Refused(refused.status, refused.title) from None
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
            title = f"{len(errors)} problem(s); nothing was published"
            if len(errors) > MAX_ERRORS:
                title += f" (the first {MAX_ERRORS} are listed)"
            raise _Refused(422, title, errors[:MAX_ERRORS])
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
            raise EventRejected(wire_errors(exc, item)) from None
        if wire.event_type is not None and wire.event_type != wire.payload.event_type:
            expected = wire.payload.event_type  # the payload's codes, not a value of the body
            raise EventRejected(
                [("/event_type", f"does not match the payload (expected {expected})")]
            )
        fields = wire.model_dump(exclude={"partner_id", "event_type"})
        try:
            return PartnerEvent.model_validate(
                {
                    **fields,
                    "partner_id": partner,
                    "event_type": wire.payload.event_type,
                    "recorded_at": utc_now(),
                }
            )
        except ValidationError as exc:
            raise EventRejected(wire_errors(exc, item)) from None

    def close(self) -> None:
        """Close the producer."""
        self.delivery.close()


def wire_errors(exc: ValidationError, item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """RFC 6901 pointers and messages that name the field and the rule, never a value.

    An unknown key is named by its position among its object's keys (``/subject/<key 3>``,
    counted from 0): a key can be data (``/subject/9434765919``). The payload's union tag
    is left out of the pointer (``/payload/kind``, as the partner wrote it). Whatever a
    message says, no string value of the item (of 4 characters or more) is repeated in it.
    """
    values = sorted({text for text in _strings(item) if len(text) >= 4}, key=len, reverse=True)
    errors: list[tuple[str, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc: list[Any] = list(err["loc"])
        if len(loc) > 2 and loc[0] == "payload":
            del loc[1]  # the discriminator's branch name, not a field the partner wrote
        if err["type"] == "extra_forbidden" and loc:
            loc[-1] = _position(item, loc)
            message = "unknown field (unknown keys are named by position, from 0, not echoed)"
        elif err["type"] == "union_tag_invalid":
            message = f"unknown family; expected one of {err.get('ctx', {}).get('expected_tags')}"
        elif err["type"] in ("value_error", "assertion_error"):
            message = _QUOTED.sub("<value>", err["msg"].removeprefix("Value error, "))
        else:
            message = err["msg"]
        for value in values:
            message = message.replace(value, "<value>")
        pointer = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)
        errors.append((pointer, message))
    return errors


def _position(item: Any, loc: Sequence[Any]) -> str:
    """``<key N>``: where the last key of ``loc`` sits in its object (N from 0)."""
    node = item
    for part in loc[:-1]:
        in_object = isinstance(node, dict) and part in node
        in_array = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_object or in_array):
            return "<key>"
        node = node[part]
    keys = list(node) if isinstance(node, dict) else []
    return f"<key {keys.index(loc[-1])}>" if loc[-1] in keys else "<key>"


def _strings(value: Any) -> Iterator[str]:
    """Every string value in parsed JSON (keys are named by position instead; its depth
    is bounded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for inner in value.values() if isinstance(value, dict) else value:
            yield from _strings(inner)


def _counts(read: int, published: int) -> dict[str, int]:
    return {"read": read, "published": published, "rejected": read - published}


def _problem(
    status: int, title: str, read: int, errors: Sequence[tuple[str, str]] = ()
) -> IngestReply:
    body: dict[str, Any] = {"status": status, "title": title, "counts": _counts(read, 0)}
    if errors:
        body["errors"] = [{"pointer": pointer, "message": message} for pointer, message in errors]
    return IngestReply(status, body)


def install_ingest(hub: Hub) -> EventIngest:
    """Add ``POST /v1/events`` to the hub's web server; returns the service behind it."""
    ingest = EventIngest(hub.settings, hub.serde, hub.partner_ids)  # grows as partners join
    items = Counter(
        "placehub_ingest_items",
        "Events posted to /v1/events, by partner and outcome (published or rejected).",
        ["partner", "outcome"],
        registry=hub.metrics.registry,
    )

    class EventsPage(View):
        """``POST /v1/events``: a partner publishes one event or an array of them."""

        async def post(self, request: Request) -> Response:
            user = caller(hub, request)
            reply = ingest.refusal(user)  # before a byte of the body is read
            if reply is None:
                try:
                    check_content_type(request.headers.get("Content-Type"), require_json=False)
                    body = await read_body(request, hub.settings.ingest_max_body_bytes)
                except RequestRefused as refused:
                    reply = _problem(refused.status, refused.title, 0)
                else:
                    reply = await ingest.submit(user, body)
            if user is not None and user.partner is not None:
                counts = reply.body["counts"]
                items.labels(user.partner, "published").inc(counts["published"])
                items.labels(user.partner, "rejected").inc(counts["rejected"])
            return self.json(reply.body, status=reply.status, headers=reply.headers)

    hub.app.page("/v1/events")(EventsPage)
    return ingest
