"""Worker-to-worker calls: a credential of the workers' own, never a forwarded user token.

Views are partitioned across workers, so a request may need another worker's share (the
books) or be answered only by the worker that owns a key (a person's view). Faust's
``table_route`` forwards the caller's request, bearer token included, to whatever URL the
consumer group's metadata names. Here a worker instead sends an *assertion*: who it acts
for (user id, role, partner), the method and path, when it was made and when it expires,
signed with HMAC-SHA256 under the place's worker secret (``PLACEHUB_WORKER_SECRET(_FILE)``).
The receiving worker checks the signature (constant time), the method, the path and the
expiry, and looks the user up in its own users file, so a user removed there is refused.
Requests go only to URLs that are members of the group, and carry no user token.

Without a configured secret a worker makes a random one: it answers its own requests,
and refuses (503, naming the setting) any request that needs another worker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

import aiohttp
from faust.types import CollectionT
from faust.web import Request, Response, View
from yarl import URL

from hub._http import RequestRefused, problem, read_body
from hub.app import Hub
from hub.config import Settings
from hub.users import User

__all__ = [
    "ASSERTION_HEADER",
    "Assertion",
    "PeerUnavailable",
    "Peers",
    "Principal",
    "WorkerCredential",
    "caller",
    "install_peers",
    "peers",
    "principal_of",
    "read_signed_body",
    "route_to_owner",
]

log = logging.getLogger(__name__)

ASSERTION_HEADER = "X-Placehub-Assertion"
_VERSION = "v1"
_MAX_ASSERTION_CHARS = 4096
_SKEW_S = 5.0  # clocks of a place's workers may differ by this much
_BODY = "placehub.routed_body"  # where route_to_owner leaves a body it read
_PRINCIPAL = "placehub.principal"  # where principal_of keeps who made a request

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Assertion:
    """A verified worker call: who it acts for (no user: the worker itself) and for what."""

    user_id: str | None
    role: str | None
    partner: str | None
    method: str
    path: str
    expires_at: float
    body_sha256: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (directly, or through a worker), or a worker for itself."""

    user: User | None
    via_worker: bool
    assertion: Assertion | None = None


class WorkerCredential:
    """Signs and verifies assertions with the place's worker secret."""

    def __init__(self, secret: bytes, ttl_s: float, configured: bool = True) -> None:
        # A key of its own for this use, so the secret could sign other things later.
        self._key = hmac.new(secret, b"placehub worker assertion v1", hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self.configured = configured
        # Assertions already taken, by id, until they expire: each is good for one call, so
        # one seen on the wire cannot be sent again while it is still fresh.
        self._used: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerCredential:
        """The configured secret, or a random one that no other worker shares."""
        secret = settings.worker_secret_bytes()
        if secret is None:
            log.info(
                "no PLACEHUB_WORKER_SECRET(_FILE): this worker refuses calls between workers; "
                "set one shared secret for a place with more than one worker"
            )
            return cls(secrets.token_bytes(32), settings.worker_assertion_ttl_s, configured=False)
        return cls(secret, settings.worker_assertion_ttl_s)

    def sign(self, user: User | None, method: str, path: str, now: float, body: bytes = b"") -> str:
        """An assertion that a worker acts for ``user`` on ``method path`` with ``body``,
        valid ``ttl_s``."""
        claims = {
            "body": hashlib.sha256(body).hexdigest(),
            "sub": user.id if user else None,
            "role": user.role.value if user else None,
            "partner": user.partner if user else None,
            "method": method.upper(),
            "path": path,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_urlsafe(16),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{_VERSION}.{payload}"
        return f"{signed}.{_b64(self._mac(signed))}"

    def verify(self, token: str, method: str, path: str, now: float) -> Assertion | None:
        """The assertion if ``token`` is genuine, unexpired, for ``method path`` and not
        used before, else None."""
        if len(token) > _MAX_ASSERTION_CHARS or token.count(".") != 2:
            return None
        version, payload, mac = token.split(".")
        if version != _VERSION:
            return None
        try:
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(f"{version}.{payload}")):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            issued, expires, once = float(claims["iat"]), float(claims["exp"]), claims["jti"]
            assertion = Assertion(
                claims["sub"], claims["role"], claims["partner"], claims["method"],
                claims["path"], expires, claims["body"],
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None
        fresh = issued - _SKEW_S <= now <= expires and expires - issued <= self.ttl_s
        if not fresh or assertion.method != method.upper() or assertion.path != path:
            return None
        if not isinstance(once, str) or once in self._used:
            return None  # a replay
        self._used = {k: exp for k, exp in self._used.items() if exp >= now} | {once: expires}
        return assertion

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class PeerUnavailable(Exception):
    """Raised when another worker cannot be asked: not a group member, no shared secret,
    or it did not answer. Not a HubError: it never leaves the HTTP handlers."""


@dataclass(frozen=True)
class PeerReply:
    """What another worker answered."""

    status: int
    content_type: str
    body: bytes


class Peers:
    """This worker's view of the other workers of its group, and how it calls them."""

    def __init__(self, hub: Hub, credential: WorkerCredential) -> None:
        self.hub = hub
        self.credential = credential

    @property
    def own_url(self) -> str:
        return self.hub.settings.canonical_url.rstrip("/")

    def members(self) -> set[str]:
        """The URLs of the group's workers, from the group's assignment metadata."""
        return {str(url).rstrip("/") for url in self.hub.app.router.tables_metadata()}

    def others(self) -> list[str]:
        """Every other worker of the group."""
        return sorted(url for url in self.members() if url != self.own_url)

    async def call(
        self,
        url: str,
        method: str,
        path: str,
        user: User | None,
        body: bytes = b"",
        content_type: str | None = None,
        timeout_s: float = 10,
    ) -> PeerReply:
        """``method path`` (with ``body``) on the worker at ``url``, acting for ``user``;
        PeerUnavailable unless ``url`` is a member of the group and answers."""
        base = url.rstrip("/")
        if base not in self.members():
            raise PeerUnavailable(f"{base} is not a worker of this group")
        if not self.credential.configured:
            raise PeerUnavailable("workers need a shared PLACEHUB_WORKER_SECRET to call each other")
        headers = {
            ASSERTION_HEADER: self.credential.sign(user, method, path, time.time(), body),
            "Accept": "application/json",
        }
        if content_type:
            headers["Content-Type"] = content_type
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    method, URL(f"{base}{path}", encoded=True), headers=headers, data=body or None
                ) as reply,
            ):
                return PeerReply(reply.status, reply.content_type, await reply.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PeerUnavailable(f"{base} did not answer ({type(exc).__name__})") from None

    async def shares(self, path: str, user: User) -> list[Any]:
        """Every other worker's share of something partitioned (``GET path``, JSON), asked
        for ``user`` with a worker assertion; PeerUnavailable if one does not give it."""
        found = []
        for url in self.others():
            reply = await self.call(url, "GET", path, user)
            if reply.status != 200:
                raise PeerUnavailable(f"{url} answered {reply.status}")
            found.append(json.loads(reply.body))
        return found


_PEERS: weakref.WeakKeyDictionary[Hub, Peers] = weakref.WeakKeyDictionary()


def install_peers(hub: Hub, credential: WorkerCredential | None = None) -> Peers:
    """Give ``hub`` its ``Peers``, with the credential from its settings unless given (at
    start, so a bad secret setting stops the worker there)."""
    found = _PEERS[hub] = Peers(hub, credential or WorkerCredential.from_settings(hub.settings))
    return found


def peers(hub: Hub) -> Peers:
    """The hub's ``Peers`` (installed on first use if ``install_peers`` was not called)."""
    return _PEERS.get(hub) or install_peers(hub)


def principal_of(hub: Hub, request: Request) -> Principal | None:
    """Who made ``request``: a worker's assertion if it carries one (and only then), else
    the user of its bearer or Basic credentials; None if neither is valid. Worked out once
    per request (an assertion is good for one use), then kept on it."""
    store = cast(Any, request)
    if _PRINCIPAL not in store:
        store[_PRINCIPAL] = _principal(hub, request)
    principal: Principal | None = store[_PRINCIPAL]
    return principal


def _principal(hub: Hub, request: Request) -> Principal | None:
    header = request.headers.get(ASSERTION_HEADER)
    if header is None:
        user = hub.users.authenticate(request.headers.get("Authorization"))
        return None if user is None else Principal(user, via_worker=False)
    path = str(request.rel_url)
    assertion = peers(hub).credential.verify(header, request.method, path, time.time())
    if assertion is None:
        return None
    if assertion.user_id is None:
        return Principal(None, via_worker=True, assertion=assertion)
    user = hub.users.by_id(assertion.user_id)
    if user is None or (user.role.value, user.partner) != (assertion.role, assertion.partner):
        return None  # this worker's users file does not know the user as asserted
    return Principal(user, via_worker=True, assertion=assertion)


def caller(hub: Hub, request: Request) -> User | None:
    """The user a request acts for (directly or through a worker), or None."""
    principal = principal_of(hub, request)
    return None if principal is None else principal.user


def route_to_owner(
    hub: Hub, table: CollectionT, *, match_info: str, max_body_bytes: int = 65_536
) -> Callable[[Handler], Handler]:
    """Decorate a view method so the worker that owns the table key in the path answers it
    (Faust's ``table_route``, but with an assertion instead of the caller's token).

    An unauthenticated request is refused here (401) and goes nowhere. A body (POST) is
    forwarded, at most ``max_body_bytes`` (413), and its SHA-256 is signed: the owner
    answers only if the body it got is the one signed, and the handler then reads it with
    ``read_signed_body``. The owner's reply (status, type, body) is passed back.
    """

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            principal = principal_of(hub, request)
            if principal is None or principal.user is None:
                return problem(view, 401, "a valid bearer token is required")
            key = request.match_info[match_info]
            try:
                owner = str(hub.app.router.key_store(table.name, key)).rstrip("/")
            except KeyError:
                return problem(view, 503, "no worker owns this key yet (rebalancing); retry")
            here = peers(hub)
            if principal.via_worker and not _same_worker(owner, here.own_url):
                return problem(view, 503, "this key's owner changed (rebalancing); retry")
            has_body = request.method.upper() not in ("GET", "HEAD")
            try:
                body = await read_body(request, max_body_bytes) if has_body else b""
            except RequestRefused as refused:
                return problem(view, refused.status, refused.title)
            signed = principal.assertion.body_sha256 if principal.assertion else None
            if signed is not None and hashlib.sha256(body).hexdigest() != signed:
                return problem(view, 401, "the body is not the one the worker signed")
            if _same_worker(owner, here.own_url):
                if has_body:
                    cast(Any, request)[_BODY] = body  # for read_signed_body
                return await handler(view, request, *args, **kwargs)
            try:
                reply = await here.call(
                    owner,
                    request.method,
                    str(request.rel_url),
                    principal.user,
                    body,
                    request.headers.get("Content-Type"),
                )
            except PeerUnavailable as exc:
                return problem(view, 503, f"the worker that owns this key: {exc}")
            return view.bytes(reply.body, content_type=reply.content_type, status=reply.status)

        return routed

    return decorate


async def read_signed_body(request: Request, limit_bytes: int) -> bytes | None:
    """The body of a request ``route_to_owner`` let through (already read, and checked
    against the worker's signature if it came from one), or None if over ``limit_bytes``."""
    try:
        body: bytes = cast(Any, request)[_BODY]
    except KeyError:
        try:
            return await read_body(request, limit_bytes)
        except RequestRefused:
            return None
    return None if len(body) > limit_bytes else body


def _same_worker(a: str, b: str) -> bool:
    """Whether two worker URLs name one worker (Faust compares host and port)."""
    ua, ub = URL(a), URL(b)
    return (ua.host, ua.port) == (ub.host, ub.port)
