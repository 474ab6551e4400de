"""Worker-to-worker calls: signed assertions, never the user's token, only to group members."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from hub.config import PROJECT_ROOT, Settings
from hub.routing import (
    ASSERTION_HEADER,
    Peers,
    PeerUnavailable,
    WorkerCredential,
    caller,
    install_peers,
    principal_of,
    read_signed_body,
    route_to_owner,
)
from hub.users import UserDirectory

USERS = UserDirectory.load(PROJECT_ROOT / "deploy/local/users.yaml")
ADMIN, STEWARD = USERS.by_id("admin"), USERS.by_id("jo.steward")
SECRET = b"s" * 32
NOW = 1_000_000.0


def credential(secret: bytes = SECRET, ttl_s: float = 30) -> WorkerCredential:
    return WorkerCredential(secret, ttl_s)


def test_an_assertion_verifies_only_for_its_method_path_and_time() -> None:
    signed = credential().sign(STEWARD, "GET", "/v1/_books", NOW)
    found = credential().verify(signed, "GET", "/v1/_books", NOW + 29)
    assert found is not None and (found.user_id, found.role) == ("jo.steward", "steward")
    assert credential().verify(signed, "GET", "/v1/_books/city-health", NOW) is None
    assert credential().verify(signed, "DELETE", "/v1/_books", NOW) is None
    assert credential().verify(signed, "GET", "/v1/_books", NOW + 31) is None  # expired
    assert credential().verify(signed, "GET", "/v1/_books", NOW - 60) is None  # not yet made
    assert credential(b"t" * 32).verify(signed, "GET", "/v1/_books", NOW) is None


def test_a_changed_claim_breaks_the_signature() -> None:
    version, payload, mac = credential().sign(STEWARD, "GET", "/v1/_books", NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(sub="admin", role="admin")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert credential().verify(f"{version}.{forged}.{mac}", "GET", "/v1/_books", NOW) is None
    assert credential().verify("v1.x.y", "GET", "/v1/_books", NOW) is None
    assert credential().verify("garbage", "GET", "/v1/_books", NOW) is None


def test_the_receiver_caps_how_long_an_assertion_may_live() -> None:
    """A sender with a longer ttl (or a forged expiry) is refused by a receiver's own."""
    signed = credential(ttl_s=300).sign(STEWARD, "GET", "/p", NOW)
    assert credential(ttl_s=30).verify(signed, "GET", "/p", NOW) is None


def test_an_assertion_is_good_for_one_call() -> None:
    """One seen on the wire could be sent again while fresh (30 s): the receiver takes each
    once. A new assertion for the same call is another one."""
    receiver, sender = credential(), credential()
    signed = sender.sign(STEWARD, "GET", "/v1/_books", NOW)
    assert receiver.verify(signed, "GET", "/v1/_books", NOW + 1) is not None
    assert receiver.verify(signed, "GET", "/v1/_books", NOW + 2) is None  # replayed
    again = sender.sign(STEWARD, "GET", "/v1/_books", NOW + 2)
    assert receiver.verify(again, "GET", "/v1/_books", NOW + 3) is not None
    # What it remembers goes once expired.
    later = sender.sign(STEWARD, "GET", "/v1/_books", NOW + 100)
    assert receiver.verify(later, "GET", "/v1/_books", NOW + 100) is not None
    assert len(receiver._used) == 1


class FakeStream:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self, n: int) -> bytes:
        chunk, self.body = self.body[:n], self.body[n:]
        return chunk


@dataclass(eq=False)
class FakeRequest(dict[str, Any]):
    """What routing reads of an aiohttp request (a mapping, like aiohttp's)."""

    method: str
    rel_url: URL
    headers: dict[str, str] = field(default_factory=dict)
    match_info: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        self.content = FakeStream(self.body)


class FakeHub:
    """What routing reads of a hub: its URL, users and the group's routing metadata."""

    def __init__(self, own_url: str, members: list[str], owner: str | None) -> None:
        router = SimpleNamespace(
            tables_metadata=lambda: {URL(url): {} for url in members},
            key_store=lambda table, key: URL(owner or own_url),
        )
        self.settings = SimpleNamespace(canonical_url=own_url)
        self.users = USERS
        self.app = SimpleNamespace(router=router)


def fake_hub(own_url: str, members: list[str], owner: str | None = None) -> Any:
    hub = FakeHub(own_url, members, owner)
    install_peers(hub, credential())  # type: ignore[arg-type]
    return hub


def test_a_request_is_the_users_or_a_workers_never_both() -> None:
    hub = fake_hub("http://127.0.0.1:1", [])
    bearer = FakeRequest("GET", URL("/x"), {"Authorization": "Bearer demo-admin"})
    assert caller(hub, bearer) == ADMIN
    signed = credential().sign(STEWARD, "GET", "/x", time.time())
    both = FakeRequest("GET", URL("/x"), {"Authorization": "Bearer demo-admin"})
    both.headers[ASSERTION_HEADER] = signed
    principal = principal_of(hub, both)  # type: ignore[arg-type]
    assert principal is not None and principal.user == STEWARD and principal.via_worker
    assert principal_of(hub, both) == principal  # worked out once: the assertion is spent
    bad = FakeRequest("GET", URL("/x"), {"Authorization": "Bearer demo-admin"})
    bad.headers[ASSERTION_HEADER] = signed + "x"  # a bad assertion does not fall back
    assert principal_of(hub, bad) is None  # type: ignore[arg-type]


@dataclass
class Seen:
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, Seen]]:
    """Another 'worker': a real HTTP server that records the headers it was sent."""
    seen = Seen()

    async def handle(request: web.Request) -> web.Response:
        seen.headers.append(dict(request.headers))
        seen.bodies.append(await request.read())
        return web.json_response({"path": str(request.rel_url)}, status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_a_call_carries_an_assertion_and_no_user_token(peer: tuple[str, Seen]) -> None:
    url, seen = peer
    peers = Peers(fake_hub("http://127.0.0.1:1", ["http://127.0.0.1:1", url]), credential())
    reply = await peers.call(url, "GET", "/v1/_books?x=1", STEWARD)
    assert reply.status == 200 and json.loads(reply.body) == {"path": "/v1/_books?x=1"}
    (headers,) = seen.headers
    assert "Authorization" not in headers and "demo-steward" not in json.dumps(headers)
    found = credential().verify(headers[ASSERTION_HEADER], "GET", "/v1/_books?x=1", time.time())
    assert found is not None and found.user_id == "jo.steward"


async def test_only_group_members_are_called_and_only_with_a_shared_secret(
    peer: tuple[str, Seen],
) -> None:
    url, seen = peer
    outsider = Peers(fake_hub("http://127.0.0.1:1", ["http://127.0.0.1:1"]), credential())
    with pytest.raises(PeerUnavailable, match="not a worker of this group"):
        await outsider.call(url, "GET", "/v1/_books", STEWARD)
    unset = Settings(worker_secret=None, worker_secret_file=None)
    alone = Peers(fake_hub("http://127.0.0.1:1", [url]), WorkerCredential.from_settings(unset))
    with pytest.raises(PeerUnavailable, match="PLACEHUB_WORKER_SECRET"):
        await alone.call(url, "GET", "/v1/_books", STEWARD)
    assert seen.headers == []


class FakeView:
    def json(self, value: Any, status: int = 200, **kwargs: Any) -> tuple[int, Any]:
        return status, value

    def bytes(self, value: bytes, status: int = 200, **kwargs: Any) -> tuple[int, Any]:
        return status, json.loads(value)


async def test_route_to_owner_answers_here_forwards_there_and_refuses_strangers(
    peer: tuple[str, Seen],
) -> None:
    url, seen = peer
    own = "http://127.0.0.1:1"
    calls: list[str] = []

    async def handler(view: Any, request: Any, person_id: str) -> Any:
        calls.append(person_id)
        return 200, {"answered": "here"}

    def routed(owner: str) -> Any:
        hub = fake_hub(own, [own, url], owner=owner)
        return route_to_owner(hub, SimpleNamespace(name="views"), match_info="person_id")(handler)

    def request(token: str | None) -> FakeRequest:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return FakeRequest("GET", URL("/v1/people/p1"), headers, {"person_id": "p1"})

    assert await routed(own)(FakeView(), request(None), person_id="p1") == (
        401,
        {"status": 401, "title": "a valid bearer token is required"},
    )
    assert await routed(own)(FakeView(), request("demo-admin"), person_id="p1") == (
        200,
        {"answered": "here"},
    )
    there = await routed(url)(FakeView(), request("demo-admin"), person_id="p1")
    assert there == (200, {"path": "/v1/people/p1"}) and calls == ["p1"]
    (headers,) = seen.headers
    assert "Authorization" not in headers and ASSERTION_HEADER in headers


async def test_a_routed_body_is_forwarded_signed_and_checked_by_the_owner(
    peer: tuple[str, Seen],
) -> None:
    url, seen = peer
    own = "http://127.0.0.1:1"
    got: list[bytes | None] = []

    async def handler(view: Any, request: Any, person_id: str) -> Any:
        got.append(await read_signed_body(request, 1_000))
        return 200, {"answered": "here"}

    def routed(owner: str) -> Any:
        hub = fake_hub(own, [own, url], owner=owner)
        return route_to_owner(hub, SimpleNamespace(name="views"), match_info="person_id")(handler)

    path, body = "/v1/people/p1/break-glass", b'{"reason_code": "safeguarding"}'
    auth = {"Authorization": "Bearer demo-practitioner-housing"}
    there = FakeRequest("POST", URL(path), auth, {"person_id": "p1"}, body)
    assert await routed(url)(FakeView(), there, person_id="p1") == (200, {"path": path})
    assert seen.bodies == [body] and "Authorization" not in seen.headers[0]
    signed = {ASSERTION_HEADER: seen.headers[0][ASSERTION_HEADER]}
    # At the owner: the signed body is handed to the handler; any other body is refused.
    same = FakeRequest("POST", URL(path), dict(signed), {"person_id": "p1"}, body)
    assert await routed(own)(FakeView(), same, person_id="p1") == (200, {"answered": "here"})
    other = FakeRequest("POST", URL(path), dict(signed), {"person_id": "p1"}, b'{"x": 1}')
    status, _ = await routed(own)(FakeView(), other, person_id="p1")
    assert status == 401 and got == [body]
