"""Signed webhooks from the hub: how a partner's receiver checks one is genuine and new.

The hub tells a partner of an alert with a POST whose body is a thin JSON notification
(the alert's id, the person's id, the rule, its severity, when; nothing more: the partner
fetches the alert at its permitted level from ``GET /v1/alerts``). Two headers come with it:

- ``Placehub-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256, keyed with the secret the
  partner and the hub share, over ``t + "." + body``. During a rotation the hub holds two
  secrets and sends one ``v1=`` per secret; a receiver accepts the request if any matches
  any of its own.
- ``Placehub-Delivery: <id>``: the notification's id, the same on every attempt and after
  a hub restart (delivery is at least once), so a receiver acts on each id once.

``WebhookVerifier.verify`` does all three checks a receiver needs: the signature, compared
in constant time; the timestamp within a tolerance of now (a captured request cannot be
replayed later); and the delivery id not seen before (``DuplicateDelivery``: answer 2xx
to it, so the hub stops retrying, and do nothing). The scheme is Stripe's and the Standard
Webhooks' (https://www.standardwebhooks.com/), written with the standard library's
``hmac`` so a receiver needs nothing else; this module imports nothing of the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "DuplicateDelivery",
    "WebhookRejected",
    "WebhookVerifier",
    "signature_header",
]

SIGNATURE_HEADER = "Placehub-Signature"
DELIVERY_HEADER = "Placehub-Delivery"
TOLERANCE_S = 300  # how far a request's timestamp may be from the receiver's clock
REMEMBERED = 100_000  # delivery ids a verifier remembers (the oldest are forgotten first)


class WebhookRejected(Exception):
    """Raised when a request is not a genuine, fresh notification from the hub; ``reason``
    is a code (``signature-missing``, ``signature-malformed``, ``signature-mismatch``,
    ``timestamp-outside-tolerance``, ``delivery-missing``, ``body-not-json``): answer 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateDelivery(WebhookRejected):
    """Raised when a genuine notification's delivery id was seen before (a retry, or a
    redelivery after a hub restart): answer 2xx and do not act on it again."""


def signature_header(secrets: Sequence[bytes], body: bytes, timestamp: int) -> str:
    """The ``Placehub-Signature`` value for ``body`` sent at ``timestamp`` (one ``v1=`` per
    secret, the current one first)."""
    signatures = ",".join(f"v1={_sign(secret, body, timestamp)}" for secret in secrets)
    return f"t={timestamp},{signatures}"


def _sign(secret: bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookVerifier:
    """A receiver's check of the hub's notifications, with the secrets it accepts (two
    during a rotation) and the delivery ids it has seen (in memory, the newest
    ``remember``)."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        tolerance_s: float = TOLERANCE_S,
        remember: int = REMEMBERED,
    ) -> None:
        if not secrets or any(not s for s in secrets):
            raise ValueError("secrets: at least one non-empty secret is required")
        self.secrets = list(secrets)
        self.tolerance_s = tolerance_s
        self.remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()

    def verify(
        self, body: bytes, headers: Mapping[str, str], now: float | None = None
    ) -> dict[str, Any]:
        """The notification in ``body`` if ``headers`` show it is the hub's, fresh and new;
        ``WebhookRejected`` (or ``DuplicateDelivery``) naming the reason otherwise."""
        header = _header(headers, SIGNATURE_HEADER)
        if header is None:
            raise WebhookRejected("signature-missing")
        timestamp, given = _parse(header)
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > self.tolerance_s:
            raise WebhookRejected("timestamp-outside-tolerance")
        expected = [_sign(secret, body, timestamp) for secret in self.secrets]
        # Every pair compared (no early exit), each in constant time.
        matched = [hmac.compare_digest(e, g) for e in expected for g in given]
        if not any(matched):
            raise WebhookRejected("signature-mismatch")
        delivery = _header(headers, DELIVERY_HEADER)
        if not delivery:
            raise WebhookRejected("delivery-missing")
        try:
            notification: dict[str, Any] = json.loads(body)
        except ValueError:
            raise WebhookRejected("body-not-json") from None
        if delivery in self._seen:
            raise DuplicateDelivery("delivery-replayed")
        self._seen[delivery] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return notification


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``name`` from ``headers``, whatever the case of the keys."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a ``Placehub-Signature`` value."""
    timestamp: int | None = None
    signatures = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("signature-malformed")
    return timestamp, signatures
