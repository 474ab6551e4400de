"""One partner's sender (hub.webhook_sender) against a real aiohttp server on loopback: a
2xx delivers, failures are retried up to the attempts and end as a reason code (status
class, redirect not followed, timeout, refused), every attempt signed the same way."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from connectors import WebhookVerifier
from hub.metrics import Metrics
from hub.partners import Webhook
from hub.webhook_notices import Notice
from hub.webhook_sender import PartnerSender, WebhookStats

SECRET = b"k" * 32
NOTICE = Notice("council-housing", "d-1", "alert.raised", b'{"type":"alert.raised"}', "p-1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve(answers: list[int], delay_s: float = 0.0) -> tuple[web.AppRunner, list[str], str]:
    """A receiver answering ``answers`` in turn (the last one from then on); the
    ``Placehub-Delivery`` of each request it verified is kept."""
    seen: list[str] = []

    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        WebhookVerifier([SECRET]).verify(body, dict(request.headers))  # none remembered
        seen.append(request.headers["Placehub-Delivery"])
        await asyncio.sleep(delay_s)
        status = answers[min(len(seen), len(answers)) - 1]
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status)

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, seen, f"http://127.0.0.1:{port}/hook"


def sender(url: str, stats: WebhookStats, **settings: float) -> PartnerSender:
    hook = Webhook.model_validate(
        {"url": url, "secret_env": "HOOK_SECRET", "allow_http": True, "max_attempts": 3}
        | {"backoff_base_s": 0.01, "timeout_s": 2}
        | settings
    )
    return PartnerSender("council-housing", hook, [SECRET], stats, Metrics())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(
    session: aiohttp.ClientSession,
) -> None:
    runner, seen, url = await serve([503, 500, 204])
    stats = WebhookStats()
    try:
        outcome = await sender(url, stats).deliver(session, NOTICE)
    finally:
        await runner.cleanup()
    assert (outcome.attempts, outcome.failure) == (3, None)
    assert seen == ["d-1", "d-1", "d-1"]  # the same delivery id on every attempt
    figures = stats.share("council-housing")
    assert (figures["delivered"], figures["retried"], figures["dead_lettered"]) == (1, 2, 0)
    assert figures["last_failure"] == "http-5xx" and figures["last_delivered_at"] is not None


@pytest.mark.parametrize(
    ("answers", "delay_s", "reason"),
    [([404], 0.0, "http-4xx"), ([302], 0.0, "http-3xx"), ([200], 1.0, "timeout")],
)
async def test_a_receiver_that_never_accepts_ends_in_a_reason_code(
    session: aiohttp.ClientSession, answers: list[int], delay_s: float, reason: str
) -> None:
    runner, seen, url = await serve(answers, delay_s)
    stats = WebhookStats()
    try:
        outcome = await sender(url, stats, timeout_s=0.3).deliver(session, NOTICE)
    finally:
        await runner.cleanup()
    assert (outcome.attempts, outcome.failure) == (3, reason)
    assert len(seen) == 3  # a redirect is a failure, never followed
    figures = stats.share("council-housing")
    assert (figures["failed_attempts"], figures["dead_lettered"]) == (3, 1)


async def test_nobody_listening_is_refused(session: aiohttp.ClientSession) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    outcome = await sender(url, WebhookStats(), max_attempts=2).deliver(session, NOTICE)
    assert (outcome.attempts, outcome.failure) == (2, "refused")
