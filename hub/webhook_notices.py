"""What a webhook says and when it is tried again: the pure half of ``hub.webhooks``.

- ``notices``: the notifications one ``hub.alerts`` record makes, one per recipient with a
  webhook. An alert raised (or escalated: the same id again) is ``alert.raised``; a
  tombstone is ``alert.erased``, told to the recipients of the alert's last value (a
  tombstone carries no value, so the sender keeps each alert's ``Told``).
- ``payload``: the JSON body. It is thin on purpose: ids, the rule, its severity and a time,
  never the events behind the alert. The least data on the wire: a URL misconfigured or a
  receiver's log holds nothing a partner may not see, and what the partner may see of the
  alert is decided where it is read (``GET /v1/alerts``, at its permitted level, audited).
- ``backoff_s``: exponential backoff with full jitter, so many failed deliveries to one
  partner do not retry in step.
- ``failure_reason``: a failed attempt as a code (``http-4xx``, ``http-5xx``, ``timeout``,
  ``refused``), never a body or a URL.
- ``Acks``: how far a ``hub.alerts`` partition may be committed: up to the first record
  whose notifications are not all delivered or dead-lettered.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from hub.models import Alert

__all__ = [
    "ALERT_ERASED",
    "ALERT_RAISED",
    "Acks",
    "Notice",
    "Told",
    "backoff_s",
    "failure_reason",
    "notices",
    "told_of",
]

ALERT_RAISED, ALERT_ERASED = "alert.raised", "alert.erased"
_DELIVERIES = uuid.UUID("1d0c3f55-7a0e-4f8b-9a3c-8e2f51b7c0a4")  # namespace of delivery ids


@dataclass(frozen=True)
class Told:
    """What the sender keeps of an alert so it can tell its recipients of its erasure."""

    person_id: str
    rule: str
    severity: str
    recipients: tuple[str, ...]


def told_of(alert: Alert) -> Told:
    """The part of ``alert`` kept for its erasure."""
    return Told(alert.person_id, alert.rule_code, str(alert.severity), tuple(alert.recipients))


@dataclass(frozen=True)
class Notice:
    """One notification for one partner: its body, and the person it is about (for the
    audit trail, which records each notification sent)."""

    partner: str
    delivery_id: str
    type: str
    body: bytes
    person_id: str


def notices(
    alert_id: str,
    alert: Alert | None,
    known: Told | None,
    with_webhook: Collection[str],
    source: str,
    at: datetime,
) -> list[Notice]:
    """The notifications the ``hub.alerts`` record for ``alert_id`` makes (``alert`` None:
    a tombstone, told to ``known``'s recipients; none if the alert was never known).

    ``source`` (topic:partition:offset) makes each delivery id, so a record delivered again
    after a restart carries the same ids; ``at`` is when a tombstone was written.
    """
    if alert is not None:
        told, kind, when = told_of(alert), ALERT_RAISED, alert.created_at
    elif known is not None:
        told, kind, when = known, ALERT_ERASED, at
    else:
        return []
    found = []
    for partner in sorted(set(told.recipients) & set(with_webhook)):
        delivery_id = str(uuid.uuid5(_DELIVERIES, f"{partner}|{source}"))
        body = payload(kind, delivery_id, alert_id, told, when)
        found.append(Notice(partner, delivery_id, kind, body, told.person_id))
    return found


def payload(kind: str, delivery_id: str, alert_id: str, told: Told, at: datetime) -> bytes:
    """The notification's JSON body (module docstring: why so little)."""
    when = "raised_at" if kind == ALERT_RAISED else "erased_at"
    body = {
        "type": kind,
        "delivery_id": delivery_id,
        "alert_id": alert_id,
        "person_id": told.person_id,
        "rule": told.rule,
        "severity": told.severity,
        when: at.isoformat(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def backoff_s(
    attempt: int, base_s: float, max_s: float, draw: Callable[[], float] = random.random
) -> float:
    """How long to wait after failed ``attempt`` (1 for the first): a uniform draw up to
    ``base_s * 2**(attempt-1)``, capped at ``max_s`` (full jitter)."""
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, not {attempt}")
    ceiling = min(max_s, base_s * (1 << min(attempt - 1, 32)))
    return ceiling * draw()


def failure_reason(status: int | None, error: BaseException | None) -> str:
    """A failed attempt as a code: the status class, ``timeout`` or ``refused``."""
    if status is not None:
        return f"http-{status // 100}xx"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "refused"


class Acks:
    """Per partition, the records whose notifications are still out, so an offset is
    committed only past records that are done (delivered or dead-lettered, every one)."""

    def __init__(self) -> None:
        self._out: dict[int, dict[int, int]] = {}  # partition → offset → notices still out
        self._next: dict[int, int] = {}  # partition → the offset after the last one added

    def add(self, partition: int, offset: int, notices: int) -> None:
        """Record ``offset`` read with ``notices`` notifications to deliver (0: done now)."""
        if notices:
            self._out.setdefault(partition, {})[offset] = notices
        self._next[partition] = offset + 1

    def done(self, partition: int, offset: int) -> None:
        """One notification of ``offset`` delivered or dead-lettered."""
        out = self._out.get(partition, {})
        if offset in out:
            out[offset] -= 1
            if not out[offset]:
                del out[offset]

    def committable(self, partition: int) -> int | None:
        """The offset to commit for ``partition``: its first record not done, or the one
        after the last added; None if nothing was added."""
        out = self._out.get(partition)
        if out:
            return min(out)
        return self._next.get(partition)

    def pending(self) -> int:
        """Records with notifications still out, over every partition."""
        return sum(len(out) for out in self._out.values())

    def forget(self, partitions: Collection[int]) -> None:
        """Drop ``partitions`` (revoked: their next owner delivers what was not done)."""
        for partition in partitions:
            self._out.pop(partition, None)
            self._next.pop(partition, None)

    def snapshot(self) -> Mapping[int, int]:
        """The committable offset of every partition with one."""
        found = {p: self.committable(p) for p in self._next}
        return {p: o for p, o in found.items() if o is not None}
