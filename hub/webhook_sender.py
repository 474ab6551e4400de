"""Sending one partner's webhook notifications: signed POSTs, retried with backoff.

Each partner with a webhook has its own ``PartnerSender``, with its own limit of requests
in flight (``Webhook.concurrency``): a slow or failing partner fills only its own slots,
and the backoff between attempts waits outside them, so notifications to the other
partners go on meanwhile. A notification is tried up to ``max_attempts`` times; a 2xx
answer delivers it, anything else (another status, a redirect, a timeout, a refused
connection) is a failed attempt, counted by reason code, and after the last one the caller
dead-letters it. Nothing about the person (the body) reaches a log: only the partner,
the reason code and the delivery id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from connectors.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, signature_header
from hub.metrics import Metrics
from hub.models import utc_now
from hub.partners import Webhook
from hub.webhook_notices import Notice, backoff_s, failure_reason

__all__ = ["Outcome", "PartnerSender", "WebhookStats"]


@dataclass
class _Figures:
    delivered: int = 0
    retried: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    last_delivered_at: datetime | None = None
    last_failed_at: datetime | None = None
    last_failure: str | None = None


@dataclass
class WebhookStats:
    """This worker's webhook figures per partner since it started (its share of the
    partner's status; ``combine`` adds the workers' shares up)."""

    figures: dict[str, _Figures] = field(default_factory=dict)

    def of(self, partner: str) -> _Figures:
        """``partner``'s figures (zero until something happens)."""
        return self.figures.setdefault(partner, _Figures())

    def share(self, partner: str) -> dict[str, object]:
        """``partner``'s figures as JSON."""
        f = self.of(partner)
        return {
            "delivered": f.delivered,
            "retried": f.retried,
            "failed_attempts": f.failed_attempts,
            "dead_lettered": f.dead_lettered,
            "last_delivered_at": _iso(f.last_delivered_at),
            "last_failed_at": _iso(f.last_failed_at),
            "last_failure": f.last_failure,
        }

    @staticmethod
    def combine(shares: list[dict[str, object]]) -> dict[str, object]:
        """Every worker's share of one partner's figures: counts added, latest times."""
        total: dict[str, object] = {}
        for name in ("delivered", "retried", "failed_attempts", "dead_lettered"):
            total[name] = sum(int(str(s[name])) for s in shares)
        for name in ("last_delivered_at", "last_failed_at"):
            times = [str(s[name]) for s in shares if s[name] is not None]
            total[name] = max(times, key=datetime.fromisoformat) if times else None
        failed = sorted(
            (s for s in shares if s["last_failed_at"] is not None),
            key=lambda s: datetime.fromisoformat(str(s["last_failed_at"])),
        )
        total["last_failure"] = failed[-1]["last_failure"] if failed else None
        return total


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass(frozen=True)
class Outcome:
    """How a notification ended: delivered, or the reason code of its last failed attempt."""

    attempts: int
    failure: str | None = None


class PartnerSender:
    """Delivers one partner's notifications (module docstring)."""

    def __init__(
        self,
        partner: str,
        webhook: Webhook,
        secrets: list[bytes],
        stats: WebhookStats,
        metrics: Metrics,
    ) -> None:
        self.partner, self.webhook, self.secrets = partner, webhook, secrets
        self.stats, self.metrics = stats, metrics
        self.slots = asyncio.Semaphore(webhook.concurrency)

    async def deliver(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        """Try ``notice`` until it is accepted or its attempts run out."""
        hook, figures = self.webhook, self.stats.of(self.partner)
        attempt = 1
        while True:
            status, error = await self._attempt(session, notice)
            if status is not None and 200 <= status < 300:
                figures.delivered += 1
                figures.last_delivered_at = utc_now()
                self._count("delivered")
                return Outcome(attempt)
            reason = failure_reason(status, error)
            figures.failed_attempts += 1
            figures.last_failed_at, figures.last_failure = utc_now(), reason
            if attempt >= hook.max_attempts:
                figures.dead_lettered += 1
                self._count("dead_lettered")
                return Outcome(attempt, reason)
            figures.retried += 1
            self._count("retried")
            await asyncio.sleep(backoff_s(attempt, hook.backoff_base_s, hook.backoff_max_s))
            attempt += 1

    async def _attempt(
        self, session: aiohttp.ClientSession, notice: Notice
    ) -> tuple[int | None, BaseException | None]:
        """One signed POST: its status, or the error that stopped it."""
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: notice.delivery_id,
            SIGNATURE_HEADER: signature_header(self.secrets, notice.body, int(time.time())),
        }
        timeout = aiohttp.ClientTimeout(total=self.webhook.timeout_s)
        async with self.slots:
            started = time.monotonic()
            try:
                async with session.post(
                    self.webhook.url,
                    data=notice.body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,  # a redirect is a failure, never followed
                ) as reply:
                    status: int | None = reply.status
                    error: BaseException | None = None
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = None, exc
            self.metrics.webhook_seconds.labels(self.partner).observe(time.monotonic() - started)
        return status, error

    def _count(self, outcome: str) -> None:
        self.metrics.count("placehub_webhook_deliveries", (self.partner, outcome))
