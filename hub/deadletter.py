"""Dead letters that always fit: the one way to build the ``hub.dlq`` record.

A record a stage cannot read or process goes to ``hub.dlq`` with the stage and the reason,
so that no record can stop a stage. That only holds if the dead letter itself can be sent:
a partner record of nearly the broker's maximum size (1 MiB by default), wrapped with a
reason and its coordinates, is larger than the maximum, its send fails and the stage
stops. So a dead letter keeps a bounded prefix of the original, and says so in the record
(``original_truncated``, with the full length in ``original_bytes``).

The bound, 512 KiB of the original (and 4,096 characters of reason), keeps the encoded
letter near 530 KiB at most: under half the broker's ``message.max.bytes`` and the
producer's ``max.request.size`` (1 MiB each by default), leaving the other half for
Kafka's batch and record overhead (about 100 bytes) and for the key and headers the
runtime sends with the letter (a partner's key comes from the same 1 MiB record). It is
the same bound as an internal batch envelope (``hub.batch.ENVELOPE_BYTES``), and the first
512 KiB of a record is more than anyone needs to see why it failed.
"""

from __future__ import annotations

from datetime import datetime

from hub.models import DeadLetter

__all__ = ["ORIGINAL_BYTES_KEPT", "REASON_CHARS_KEPT", "dead_letter"]

ORIGINAL_BYTES_KEPT = 512 * 1024
REASON_CHARS_KEPT = 4096


def dead_letter(
    reason: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    original: bytes | None,
    failed_at: datetime,
    max_bytes: int = ORIGINAL_BYTES_KEPT,
) -> DeadLetter:
    """The dead letter for the record at ``topic``/``partition``/``offset`` that ``stage``
    could not read or process, keeping at most ``max_bytes`` of its value.

    ``reason`` must name fields and rules, never a person's data (the hub makes it from its
    own error messages); one longer than ``REASON_CHARS_KEPT`` characters is cut, saying
    so. A record with no value (null) is kept as empty bytes. ``failed_at`` must be
    timezone-aware; it is kept to the millisecond, as Avro's timestamp-millis does.
    Raises ValueError if ``max_bytes`` is negative.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
    value = original or b""
    kept = bytes(value[:max_bytes])
    return DeadLetter(
        reason=_bounded(reason),
        stage=stage,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        original=kept,
        original_bytes=len(value),
        original_truncated=len(kept) < len(value),
        failed_at=failed_at.replace(microsecond=failed_at.microsecond // 1000 * 1000),
    )


def _bounded(reason: str) -> str:
    if len(reason) <= REASON_CHARS_KEPT:
        return reason
    note = f" ... (cut: {len(reason)} characters in all)"
    return reason[: REASON_CHARS_KEPT - len(note)] + note
