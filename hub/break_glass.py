"""Break-glass reads: a practitioner reads a person their organisation is not involved with.

Such a read needs a reason code (one of ``REASON_CODES``) and a written reason. The hub
checks the written reason's length and keeps nothing of it: it is free text about a person,
which no topic, log or metric may hold (the design's non-negotiable 4), so it stays with
the reader's organisation's own case record and never reaches a log or a reply. What is kept
is the code.

The data owners see every break-glass read of their data: for each partner whose entries
were shown, a ``BreakGlassRead`` goes to the ``hub.break-glass`` topic, keyed by that
partner, before the reply is sent. ``GET /v1/partners/{id}/break-glass`` reads that
partner's partition back. A topic rather than a Faust table because web handlers cannot
write a Faust table (only stream iteration can), a table's changelog is deleted by
``placehub replay`` and cannot be rebuilt from a read, and break-glass reads are rare, so
reading a partition on request is cheap. ``hub.audit`` keeps the read too (action
``person.break-glass``), but has no field for the owners, and reading all of it per request
would not scale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

from hub import batch
from hub.config import Settings
from hub.errors import InputError
from hub.keyed_read import read_key
from hub.models import BreakGlassRead, ReasonCode
from hub.runtime import producer_of
from hub.serde import Serde

__all__ = [
    "BODY_MAX_BYTES",
    "REASON_CODES",
    "REASON_MAX_CHARS",
    "REASON_MIN_CHARS",
    "BadBreakGlass",
    "BreakGlassLog",
    "BreakGlassRead",
    "ReasonCode",
    "break_glass_topic",
    "reads_for",
    "reason_code_of",
]

REASON_CODES: tuple[str, ...] = get_args(ReasonCode)
REASON_MIN_CHARS = 20  # long enough to say something; short of an essay
REASON_MAX_CHARS = 1000
BODY_MAX_BYTES = 8192  # the reason in UTF-8 (up to 4 bytes a character) and the code


LIST_MAX = 1000  # newest reads a listing returns
READ_TIMEOUT_S = 10.0  # to read an owner's partition to its end


class BadBreakGlass(InputError):
    """Raised when a break-glass request body is not ``{"reason_code", "reason"}`` within
    bounds; the message names the field and the rule, never the value, and ``status`` is
    the HTTP status to answer with."""

    def __init__(self, title: str, status: int = 422) -> None:
        super().__init__(title)
        self.title, self.status = title, status


def reason_code_of(body: bytes | None) -> ReasonCode:
    """The reason code of a valid break-glass body (the written reason is checked, then
    dropped); raises ``BadBreakGlass`` naming the field and rule broken."""
    if body is None:
        raise BadBreakGlass(f"the body is over {BODY_MAX_BYTES} bytes", 413)
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadBreakGlass("the body must be a UTF-8 JSON object", 400) from None
    if not isinstance(parsed, dict):
        raise BadBreakGlass("the body must be a JSON object")
    if set(parsed) != {"reason_code", "reason"}:
        raise BadBreakGlass("the body must have exactly the fields reason_code and reason")
    code, reason = parsed["reason_code"], parsed["reason"]
    if code not in REASON_CODES:
        raise BadBreakGlass(f"reason_code: must be one of {', '.join(REASON_CODES)}")
    if not isinstance(reason, str) or not (
        REASON_MIN_CHARS <= len(reason.strip()) <= REASON_MAX_CHARS
    ):
        raise BadBreakGlass(
            f"reason: must be text of {REASON_MIN_CHARS} to {REASON_MAX_CHARS} characters"
        )
    result: ReasonCode = code
    return result


def break_glass_topic(settings: Settings) -> str:
    """The topic of break-glass reads, beside hub.audit (kept by ``placehub replay``)."""
    return f"{settings.topic_prefix}hub.break-glass"


class BreakGlassLog:
    """Writes break-glass reads for their owners (``BreakGlassRead``, a catalogued Avro
    contract, so an owner's own systems can read the topic), and reads one owner's back."""

    def __init__(self, settings: Settings, app: Any, serde: Serde) -> None:
        self.settings = settings
        self.app = app
        self.serde = serde
        self.topic = break_glass_topic(settings)

    def _partition(self, owner: str) -> int:
        return batch.partition_for(owner.encode(), self.settings.partitions)

    async def record(self, reads: Sequence[BreakGlassRead]) -> None:
        """Send one record per owner and wait until Kafka has them all."""
        producer = producer_of(self.app)
        deliveries = []
        for read in reads:
            value = self.serde.encode(read, f"{self.topic}-value")
            key = read.owner.encode()
            deliveries.append(
                await producer.send(
                    self.topic, value, key=key, partition=self._partition(read.owner)
                )
            )
        for delivery in deliveries:
            await delivery

    async def of_owner(self, owner: str) -> list[BreakGlassRead]:
        """Break-glass reads of ``owner``'s data, newest first (at most ``LIST_MAX``)."""
        key = owner.encode()
        timeout = READ_TIMEOUT_S
        reads = await read_key(self.settings, self.serde, self.topic, key, BreakGlassRead, timeout)
        return sorted(reads, key=lambda read: read.at, reverse=True)[:LIST_MAX]


def reads_for(
    owners: Sequence[str],
    *,
    audit_id: str,
    at: datetime,
    actor: str,
    actor_partner: str,
    person_id: str,
    reason_code: ReasonCode,
) -> list[BreakGlassRead]:
    """One ``BreakGlassRead`` per owner whose data a break-glass read showed."""
    return [
        BreakGlassRead(
            audit_id=audit_id,
            at=at,
            owner=owner,
            actor=actor,
            actor_partner=actor_partner,
            person_id=person_id,
            reason_code=reason_code,
        )
        for owner in owners
    ]
