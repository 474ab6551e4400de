"""HTTP ingest against a real worker and broker: 202 only after the ack, precise refusals."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import ConsentDraft, Publisher, token
from hub import broker
from hub.config import Settings
from tests.integration.connector_helpers import GOOD_NHS, published_events, raw_topic_bytes
from tests.integration.helpers import WorkerProcess, free_port

PARTNER, PARTNER_TOKEN = "city-health", "demo-partner-health"
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # well within retention


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PLACEHUB_TOPIC_PREFIX": settings.topic_prefix,
        "PLACEHUB_APP_ID": settings.app_id,
        "PLACEHUB_WEB_PORT": str(settings.web_port),
        "PLACEHUB_STATE_DIR": str(settings.state_dir),
        "PLACEHUB_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PLACEHUB_AGREEMENTS_DIR": str(settings.agreements_dir),
        "PLACEHUB_INGEST_MAX_BODY_BYTES": "8192",
        "PLACEHUB_INGEST_MAX_ITEMS": "5",
        **extra,
    }


@pytest.fixture
def ingest_worker(hub_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker with small ingest limits, so 413 is cheap to reach."""
    process = WorkerProcess(hub_settings, tmp_path / "worker.log", env=_env(hub_settings))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def wire(settings: Settings, **changes: Any) -> dict[str, Any]:
    """A valid wire event (tokens made at source, as a partner would), with ``changes``."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "source_system": "emis-health",
        "source_ref": "RX1-778",
        "occurred_at": WHEN.isoformat().replace("+00:00", "Z"),
        "subject": {"tokens": [token("nhs", GOOD_NHS, settings.place_key_bytes())]},
        "basis": {"kind": "CONSENT", "consent_id": "c-1", "purpose": "early-help"},
        "payload": {"family": "health", "kind": "AE_ATTENDANCE"},
    }
    event.update(changes)
    return event


def post(worker: WorkerProcess, body: Any, token_: str | None = PARTNER_TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token_}"} if token_ else {}
    if isinstance(body, bytes):
        return requests.post(f"{worker.url}/v1/events", data=body, headers=headers, timeout=30)
    return requests.post(f"{worker.url}/v1/events", json=body, headers=headers, timeout=30)


def _assert_counted(reply: requests.Response) -> dict[str, int]:
    counts: dict[str, int] = reply.json()["counts"]
    assert counts["read"] == counts["published"] + counts["rejected"]
    return counts


def test_one_event_or_an_array_202_after_ack_and_resend_is_harmless(
    ingest_worker: WorkerProcess,
) -> None:
    settings = ingest_worker.settings
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(
            ConsentDraft(
                consent_id="c-1",
                identifiers={"nhs": GOOD_NHS},
                purposes=["early-help"],
                sharing_partners=[PARTNER],
            )
        )
    one = wire(settings)
    many = [wire(settings, source_ref=f"RX1-{n}") for n in range(3)]

    first, second = post(ingest_worker, one), post(ingest_worker, many)
    again = post(ingest_worker, many)  # a client that never saw the 202 sends again

    assert first.status_code == 202 and first.json()["event_ids"] == [one["event_id"]]
    assert second.status_code == 202 and again.status_code == 202
    assert second.json()["event_ids"] == [e["event_id"] for e in many]
    assert _assert_counted(second) == {"read": 3, "published": 3, "rejected": 0}
    events = published_events(settings, PARTNER)  # in Kafka by the time 202 was answered
    assert {e.event_id for e in events} == {one["event_id"], *(e["event_id"] for e in many)}
    assert {e.partner_id for e in events} == {PARTNER}
    # The barrier: all 7 records received and every one placed (none in flight); only then
    # is "no double count" a fact rather than a race.
    books = ingest_worker.wait_for(
        f"/v1/partners/{PARTNER}/status",
        lambda r: r.ok and r.json()["received"] == 7 and r.json()["in_flight"] == 0,
        expecting="7 records received and none in flight",
    ).json()
    assert (books["in_view"], books["duplicate"], books["balanced"]) == (4, 3, True)


# (name, body maker, status, [(pointer, message fragment)]): each must be refused precisely.
NHS_DIGITS = GOOD_NHS.replace(" ", "")
JSON_CORPUS: list[tuple[str, Any, int, list[tuple[str, str]]]] = [
    # A refusal of the whole body (400, 415) names the rule in its title.
    ("not json", b"{not json", 400, [("title", "not valid JSON")]),
    ("not utf-8", b'{"a": "\xff"}', 400, [("title", "not UTF-8")]),
    ("utf-16", '{"a": 1}'.encode("utf-16"), 415, [("title", "must be JSON in UTF-8")]),
    ("5,000-digit integer", b'{"a": ' + b"9" * 5_000 + b"}", 400, [("title", "64-bit range")]),
    ("integer over 64 bits", b'{"a": 18446744073709551616}', 400, [("title", "64-bit range")]),
    ("a number", b"42", 422, [("", "expected an event object or an array")]),
    ("empty array", b"[]", 422, [("", "the array is empty")]),
    ("array of a string", ["x"], 422, [("/0", "expected an event object")]),
    ("no event_id", {"event_id": None}, 422, [("/event_id", "Input should be a valid string")]),
    ("event_id not a uuid", {"event_id": "42"}, 422, [("/event_id", "should match pattern")]),
    (
        "raw NHS number as a token",
        {"subject": {"tokens": [NHS_DIGITS]}},
        422,
        [("/subject/tokens/0", "should match pattern")],
    ),
    ("no tokens", {"subject": {"tokens": []}}, 422, [("/subject/tokens", "at least 1 item")]),
    ("no basis", {"basis": None}, 422, [("/basis", "every event needs a lawful basis")]),
    (
        "consent basis without id",
        {"basis": {"kind": "CONSENT", "purpose": "early-help"}},
        422,
        [("/basis", "every event needs a lawful basis")],
    ),
    ("unknown family", {"payload": {"family": "zoo", "kind": "X"}}, 422, [("/payload", "family")]),
    (
        "unknown kind",
        {"payload": {"family": "health", "kind": "HAIRCUT"}},
        422,
        [("/payload/kind", "Input should be 'AE_ATTENDANCE'")],
    ),
    (
        "naive time",
        {"occurred_at": WHEN.replace(tzinfo=None).isoformat()},
        422,
        [("/occurred_at", "timezone info")],
    ),
    # An unknown key is named by its position (from 0), never echoed: a key can be data.
    ("raw field", {"nhs_number": NHS_DIGITS}, 422, [("/<key 7>", "unknown field")]),
    (
        "raw key in subject",
        {"subject": {"tokens": ["nhs:" + "A" * 43], NHS_DIGITS: "x"}},
        422,
        [("/subject/<key 1>", "unknown field")],
    ),
    (
        "event_type mismatch",
        {"event_type": "health.gp_registration"},
        422,
        [("/event_type", "does not match the payload (expected health.ae_attendance)")],
    ),
    (
        "bad ward",
        {"subject": {"tokens": ["nhs:" + "A" * 43], "area_code": "Leeds"}},
        422,
        [("/subject/area_code", "should match pattern")],
    ),
    ("source_ref with spaces", {"source_ref": "RX 1"}, 422, [("/source_ref", "match pattern")]),
]


def _body(settings: Settings, maker: Any) -> Any:
    if isinstance(maker, bytes):
        return maker
    if isinstance(maker, list):
        return maker
    return [wire(settings), wire(settings, **maker)]  # one good, one bad: neither published


def test_malformed_json_corpus_precise_errors_nothing_published(
    ingest_worker: WorkerProcess,
) -> None:
    settings = ingest_worker.settings
    for name, maker, status, expected in JSON_CORPUS:
        body = _body(settings, maker)
        reply = post(ingest_worker, body)
        assert reply.status_code == status, f"{name}: {reply.status_code} {reply.text}"
        assert NHS_DIGITS not in reply.text, f"{name}: the reply echoes an identifier"
        if status in (400, 415):
            ((_, rule),) = expected
            assert rule in reply.json()["title"], (name, reply.text)
            continue
        counts = _assert_counted(reply)
        assert counts["published"] == 0, name
        errors = [(e["pointer"], e["message"]) for e in reply.json()["errors"]]
        index = "/1" if isinstance(maker, dict) else ""
        for pointer, fragment in expected:
            assert any(p == index + pointer and fragment in m for p, m in errors), (name, errors)
    assert raw_topic_bytes(settings, PARTNER) == b"", "a refused request published something"


def test_401_403_and_413_are_distinct(ingest_worker: WorkerProcess) -> None:
    settings = ingest_worker.settings
    event = wire(settings)
    assert post(ingest_worker, event, token_=None).status_code == 401
    assert post(ingest_worker, event, token_="not-a-token").status_code == 401
    assert post(ingest_worker, event, token_="demo-practitioner-housing").status_code == 403
    foreign = post(ingest_worker, wire(settings, partner_id="council-housing"))
    assert foreign.status_code == 403
    assert foreign.json()["errors"][0]["pointer"] == "/partner_id"
    assert post(ingest_worker, [wire(settings) for _ in range(6)]).status_code == 413
    big = post(ingest_worker, wire(settings, padding="x" * 9000))
    assert big.status_code == 413 and "8192 bytes" in big.json()["title"]
    assert raw_topic_bytes(settings, PARTNER) == b""


def test_hostile_bodies_get_a_clear_refusal_that_echoes_nothing(worker: WorkerProcess) -> None:
    """Each gave a 500 with a traceback in the log (or echoed the value) before: a
    10,000-deep array, a 5,000-digit integer, a 900,000-character event_type."""
    settings = worker.settings
    name = "JANE SMITH 1980-02-01 AB1 2CD"
    cases: list[tuple[Any, int, str]] = [
        (b"[" * 10_000 + b"]" * 10_000, 400, "nested deeper than"),
        (b'{"a": ' + b"1" * 5_000 + b"}", 400, "integer outside the 64-bit range"),
        ([wire(settings, event_type=name * 31_000)], 422, "problem(s)"),
        ([wire(settings, event_type=f"health.{name}")], 422, "problem(s)"),
        ('{"a": 1}'.encode("utf-16-le"), 415, "UTF-8"),
    ]
    for body, status, title in cases:
        reply = post(worker, body)
        assert (reply.status_code, title in reply.json()["title"]) == (status, True), reply.text
        assert "JANE" not in reply.text
    log = worker.log_path.read_text()
    assert "Traceback" not in log and "JANE" not in log
    assert raw_topic_bytes(settings, PARTNER) == b""


def test_the_token_is_checked_before_the_body_is_read(ingest_worker: WorkerProcess) -> None:
    """A request without a valid token is answered at once, though its body never comes
    (the old handler read the body first, and waited for it)."""
    host, port = ingest_worker.settings.web_host, ingest_worker.settings.web_port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-token\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"
        )
        head = sock.recv(1024)  # a socket timeout here: the worker waits for the body
    assert head.startswith(b"HTTP/1.1 401"), head


def test_503_with_retry_after_when_the_broker_is_away(
    broker_settings: Settings, tmp_path: Path
) -> None:
    port = broker_settings.broker_port + 100  # a private broker this test may stop
    own = Settings(
        broker_port=port,
        controller_port=port + 1,
        bootstrap_servers=f"127.0.0.1:{port}",
        broker_dir=tmp_path / "broker",
        broker_heap_mb=256,
        jar_cache_dir=broker_settings.jar_cache_dir,
        web_port=free_port(),
        state_dir=tmp_path / "state",
        app_id="placehub-t503",
    )
    broker.start(own, progress=lambda line: None)
    worker = WorkerProcess(
        own, tmp_path / "worker.log", env=_env(own, PLACEHUB_INGEST_TIMEOUT_MS="3000")
    )
    try:
        worker.start()
        assert post(worker, wire(own)).status_code == 202
        broker.stop(own)
        started = time.monotonic()
        reply = post(worker, wire(own))
        assert reply.status_code == 503, reply.text
        assert reply.headers["Retry-After"] == "5"
        assert _assert_counted(reply) == {"read": 1, "published": 0, "rejected": 1}
        assert time.monotonic() - started < 20
    finally:
        worker.stop()
        broker.stop(own)
