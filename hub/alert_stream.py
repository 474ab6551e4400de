"""Live alerts for practitioners: ``GET /v1/alerts/stream`` (server-sent events).

Each alert the practitioner's organisation is told of comes as ``event: alert`` whose
``data:`` is the alert exactly as one item of ``GET /v1/alerts`` shows it to them
(``hub.alerts_api.inbox_items``: the events their organisation may see, the rest counted,
their own ``source_ref``s, its ``status`` in their inbox); an escalation comes again
under the same ``alert_id``, and an erasure as ``event: erased`` with ``{"alert_id"}`` so
a page can drop it. Every alert is audited (``alert.view``) before it is sent, as the
inbox does.

Every event's ``id:`` is the stream's position in ``hub.alerts`` (``hub.alert_feed``); a
client that reconnects with it as ``Last-Event-ID`` gets what it missed and nothing twice
(a ``Last-Event-ID`` that is not such a position: 400). Once what was missed is sent, an
``id:`` with no data marks the position the stream is live from, so a client that
reconnects before the next alert misses nothing either.
A comment every ``HEARTBEAT_S`` keeps proxies from closing a quiet stream;
``placehub_alert_streams`` counts the streams open on a worker.

``hub.alerts`` carries codes only; what a reader may see of an alert (the events' bases,
the recipients' own refs) is in the alerts table, partitioned by person. The stream reads
the person's row from this worker's table, or from the worker that owns it (a worker
assertion, ``GET /v1/_alerts/person/{id}``), waiting briefly for the table to hold what the
topic already says (the stage writes its tables once the topic has the record). An alert
whose row cannot be had in that time (a rebalance, a worker gone) and that was not erased
ends the stream just before it: the client resumes from the last id it had and the alert
is tried again, never skipped.

``stream_alerts`` is the stream for an already-authenticated user, for pages with a
session of their own. Streams end when the worker stops (they do not hold up its stop).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiohttp.web import BaseRequest, StreamResponse, json_response
from aiohttp_sse import EventSourceResponse
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import Gauge
from yarl import URL

from hub._http import problem
from hub.access import Bases, Reader, refusal
from hub.alert_feed import AlertFeed, BadPosition, Cursor, FeedRecord, live_batches, parse_position
from hub.alert_status import status_book
from hub.alerts_api import ALERT_VIEW, CONSENTS, inbox_items, owners_of
from hub.app import Hub
from hub.audit import write_audit
from hub.errors import BrokerError
from hub.models import utc_now
from hub.routing import PeerUnavailable, caller, peers, principal_of
from hub.users import User

__all__ = ["HEARTBEAT_S", "LiveAlerts", "install_alert_stream", "live_alerts", "stream_alerts"]

HEARTBEAT_S = 15.0  # a comment on a quiet stream this often
ROW_WAIT_S = 5.0  # how long an alert on the topic may take to reach the alerts table
_ROW_POLL_S = 0.002  # the first wait for the table; doubling
_ROWS_KEPT = 2_000  # alerts resolved recently (one lookup however many streams show it)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LiveAlerts:
    """A worker's feed of ``hub.alerts`` and the lookups its streams share."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.feed = AlertFeed(hub.settings, hub.serde, hub.topics.alerts)
        self.open_streams = Gauge(
            "placehub_alert_streams",
            "Live alert streams open on this worker",
            registry=hub.metrics.registry,
        )
        self._rows: OrderedDict[tuple[str, int], asyncio.Task[dict[str, Any] | None]]
        self._rows = OrderedDict()

    def row(self, record: FeedRecord) -> asyncio.Task[dict[str, Any] | None]:
        """The alerts table's row for ``record``'s alert as raised then (or later), or None
        if no worker gives it within ``ROW_WAIT_S`` (erased since, or not to be had now: a
        later call asks again)."""
        assert record.alert is not None
        key = (record.alert_id, _ms(record.alert.created_at))
        known = self._rows.get(key)
        if known is None or (known.done() and (known.exception() or known.result() is None)):
            self._rows[key] = asyncio.create_task(self._wait_for_row(record, key[1]))
            while len(self._rows) > _ROWS_KEPT:
                self._rows.popitem(last=False)
        return self._rows[key]

    async def _wait_for_row(self, record: FeedRecord, raised_ms: int) -> dict[str, Any] | None:
        assert record.alert is not None
        deadline = time.monotonic() + ROW_WAIT_S
        delay_s = _ROW_POLL_S
        while True:
            rows = await self._person_rows(record.alert.person_id)
            row = next((r for r in rows if r["alert_id"] == record.alert_id), None)
            if row is not None and _ms(datetime.fromisoformat(row["raised_at"])) >= raised_ms:
                return row
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.2)  # soon for this worker's table; gently for another's

    async def _person_rows(self, person_id: str) -> list[dict[str, Any]]:
        """The person's alerts as the alerts table keeps them, wherever it is kept."""
        here = peers(self.hub)
        try:
            owner = str(self.hub.app.router.key_store(self.hub.alerts.name, person_id))
        except KeyError:  # rebalancing: no owner yet
            return []
        if _same(owner, here.own_url):
            return local_rows(self.hub, person_id)
        try:
            reply = await here.call(owner, "GET", f"/v1/_alerts/person/{person_id}", None)
        except PeerUnavailable:
            return []
        rows: list[dict[str, Any]] = json.loads(reply.body) if reply.status == 200 else []
        return rows


def local_rows(hub: Hub, person_id: str) -> list[dict[str, Any]]:
    """``person_id``'s alerts in this worker's part of the alerts table."""
    stored = hub.alerts.get(person_id.encode()) or {}
    rows: list[dict[str, Any]] = stored.get("alerts", [])
    return rows


_LIVE: weakref.WeakKeyDictionary[Hub, LiveAlerts] = weakref.WeakKeyDictionary()


def live_alerts(hub: Hub) -> LiveAlerts:
    """The hub's ``LiveAlerts`` (made on first use)."""
    if hub not in _LIVE:
        _LIVE[hub] = LiveAlerts(hub)
    return _LIVE[hub]


async def stream_alerts(hub: Hub, request: Request, user: User) -> StreamResponse:
    """The live stream of ``user``'s alerts (module docstring), for a user already
    authenticated (a bearer token here, a page's session elsewhere). 403 for a user who
    may not read alerts, 400 for a ``Last-Event-ID`` that is not a position."""
    refused = refusal(user)
    if refused:
        await write_audit(hub, user, None, "denied", "alerts.stream")
        return _problem(403, refused)
    live = live_alerts(hub)
    since = None
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        try:
            since = parse_position(header, hub.settings.partitions)
        except BadPosition as exc:
            return _problem(400, f"Last-Event-ID: {exc}")
    reader = Reader.of(user)
    try:
        await status_book(hub).current()  # the statuses as they stand, then as they come
    except BrokerError:
        return _problem(503, "the alerts' statuses could not be read; try again")
    subscription = await live.feed.subscribe()
    cursor = Cursor(since if since is not None else list(subscription.start))
    sse = EventSourceResponse(ping_interval=HEARTBEAT_S)
    live.open_streams.inc()
    try:
        await sse.prepare(cast(BaseRequest, request))
        missed = await live.feed.missed(cursor.offsets, subscription.start)
        if not await _send(live, sse, user, reader, cursor.take(missed)):
            return sse
        cursor.catch_up(subscription.start)
        # Live from here: an id with no data sets the client's Last-Event-ID (so one that
        # reconnects before the next alert misses nothing) and marks the end of catching up.
        await sse.write(f"id: {cursor.id}\r\n\r\n".encode())
        # A client gone: its ping stops; end the stream then rather than at the next alert.
        ended = asyncio.ensure_future(sse.wait())
        ended.add_done_callback(lambda _: subscription.end())
        async for batch in live_batches(subscription, cursor):
            if not await _send(live, sse, user, reader, batch):
                break
    except (ConnectionResetError, TimeoutError):
        pass  # the client went away; it resumes from the last id it had
    finally:
        live.open_streams.dec()
        live.feed.unsubscribe(subscription)
        if sse.prepared:
            sse.stop_streaming()
    return sse


async def _send(
    live: LiveAlerts,
    sse: EventSourceResponse,
    user: User,
    reader: Reader,
    batch: list[tuple[FeedRecord, str]],
) -> bool:
    """Send what of ``batch`` the reader's organisation is told of, at their level, in
    order; the alerts' audits are written together, all before any is sent. False, having
    sent what came before it, at an alert that cannot be shown yet (the stream ends, and
    the client resumes from the last id it had: before that alert)."""
    found = await asyncio.gather(*(_event(live, reader, record) for record, _ in batch))
    events = [(k, data, id_) for (_, id_), (k, data) in zip(batch, found, strict=True) if k]
    unresolved = next((n for n, (kind, _, _) in enumerate(events) if kind == _UNRESOLVED), None)
    events = events[:unresolved]
    await asyncio.gather(
        *(
            write_audit(live.hub, user, data["person_id"], "ok", ALERT_VIEW, owners=owners_of(data))
            for kind, data, _ in events
            if kind == "alert"
        )
    )
    for kind, data, id_ in events:
        await sse.send(json.dumps(data), id_, kind)
    return unresolved is None


_UNRESOLVED = "unresolved"  # an alert whose row no worker gave in time


async def _event(live: LiveAlerts, reader: Reader, record: FeedRecord) -> tuple[str, Any]:
    """The event ``record`` is for ``reader`` (``("", None)`` if none): an alert as the
    inbox shows it to them, or an erasure (``_UNRESOLVED`` if its row is not to be had)."""
    if record.alert is None:
        told = live.feed.recipients.get(record.alert_id)
        # An erasure of an alert this worker never read goes to every stream: the id of an
        # alert says nothing of the person, and a page without it ignores it.
        if told is None or reader.partner in told:
            return "erased", {"alert_id": record.alert_id}
        return "", None
    if reader.partner not in record.alert.recipients:
        return "", None
    row = await live.row(record)
    if row is None:
        # Erased since (its tombstone is read: the stream sends that), or its row is not to
        # be had now (a rebalance, a worker gone): not skipped, tried again on resuming.
        return ("", None) if record.alert_id in live.feed.erased else (_UNRESOLVED, None)
    hub = live.hub
    bases = Bases(hub.agreements, lambda cid: CONSENTS.live(cid, hub.consents), utc_now())
    items = inbox_items([row], record.alert.person_id, reader, bases)
    if not items:
        return "", None
    item = items[0]
    raised_at = datetime.fromisoformat(item["raised_at"])
    item["status"] = status_book(hub).status(item["alert_id"], reader.partner, raised_at).value
    return "alert", item


def install_alert_stream(hub: Hub) -> None:
    """Add the stream (and the rows one worker gives another) to the web server."""
    live = live_alerts(hub)

    async def close_streams(_: object) -> None:
        await live.feed.close()

    cast(AiohttpWeb, hub.app.web).web_app.on_shutdown.append(close_streams)

    class AlertStream(View):
        """``GET /v1/alerts/stream``: the caller's alerts as they are raised."""

        async def get(self, request: Request) -> StreamResponse:
            user = caller(hub, request)
            if user is None:
                return _problem(401, "a valid bearer token is required")
            return await stream_alerts(hub, request, user)

    class RowsForAWorker(View):
        """``GET /v1/_alerts/person/{person_id}``: a person's alert rows, for a worker."""

        async def get(self, request: Request, person_id: str) -> Response:
            principal = principal_of(hub, request)
            if principal is None or not principal.via_worker:
                return problem(self, 401, "only the place's workers may ask for alert rows")
            return self.json(local_rows(hub, person_id))

    hub.app.page("/v1/alerts/stream")(AlertStream)
    hub.app.page("/v1/_alerts/person/{person_id}")(RowsForAWorker)


def _problem(status: int, title: str) -> StreamResponse:
    return json_response({"status": status, "title": title}, status=status)


def _ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _same(a: str, b: str) -> bool:
    """Whether two worker URLs name one worker (host and port, as Faust compares them)."""
    ua, ub = URL(a), URL(b)
    return (ua.host, ua.port) == (ub.host, ub.port)
