"""Dead letters always fit on hub.dlq: a bounded prefix of a large original, and saying so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from hub.codec import decode_body, encode, split_frame
from hub.contracts import history
from hub.deadletter import ORIGINAL_BYTES_KEPT, REASON_CHARS_KEPT, dead_letter
from hub.models import DeadLetter
from hub.schema_files import load_schema

WHEN = datetime.now(UTC) - timedelta(minutes=5)
BROKER_MAX_BYTES = 1024 * 1024
SCHEMA = fastavro.parse_schema(load_schema("DeadLetter"))


def letter(original: bytes | None, **overrides: Any) -> DeadLetter:
    arguments: dict[str, Any] = {
        "reason": "Avro body is truncated (1048495 bytes): EOFError",
        "stage": "gate",
        "topic": "partner.council-housing.events",
        "partition": 3,
        "offset": 81_234,
        "original": original,
        "failed_at": WHEN,
    }
    return dead_letter(**(arguments | overrides))


def encoded(letter: DeadLetter) -> bytes:
    return encode(SCHEMA, 1, letter.to_avro())


def test_a_record_of_nearly_the_broker_maximum_keeps_a_prefix_and_says_so() -> None:
    original = bytes(range(256)) * (1_048_500 // 256) + b"\x07" * (1_048_500 % 256)
    assert len(original) == 1_048_500
    made = letter(original)
    whole = made.model_copy(update={"original": original})  # what the hub used to send
    assert len(encoded(whole)) > BROKER_MAX_BYTES  # over the limit before Kafka's overhead
    assert made.original_truncated
    assert made.original_bytes == 1_048_500
    assert made.original == original[:ORIGINAL_BYTES_KEPT]
    assert made.stage == "gate"
    data = encoded(made)
    assert len(data) < 1_000_000
    assert DeadLetter.from_avro(decode_body(split_frame(data)[1], SCHEMA)) == made


def test_a_small_record_is_kept_whole() -> None:
    made = letter(b"\x00\x00\x00\x00\x2a\x02\xff")
    assert made.original == b"\x00\x00\x00\x00\x2a\x02\xff"
    assert made.original_bytes == 7
    assert not made.original_truncated
    assert DeadLetter.from_avro(decode_body(split_frame(encoded(made))[1], SCHEMA)) == made


def test_a_record_exactly_at_the_bound_is_whole_and_one_byte_more_is_cut() -> None:
    at_bound = letter(b"x" * ORIGINAL_BYTES_KEPT)
    assert (at_bound.original_bytes, at_bound.original_truncated) == (ORIGINAL_BYTES_KEPT, False)
    over = letter(b"x" * (ORIGINAL_BYTES_KEPT + 1))
    assert (over.original_bytes, over.original_truncated) == (ORIGINAL_BYTES_KEPT + 1, True)
    assert len(over.original) == ORIGINAL_BYTES_KEPT


def test_a_record_without_a_value_is_kept_as_empty_bytes() -> None:
    made = letter(None, reason="record has no value (null)")
    assert (made.original, made.original_bytes, made.original_truncated) == (b"", 0, False)


def test_the_bound_can_be_set_by_the_caller() -> None:
    made = letter(b"0123456789abcdef", max_bytes=10)
    assert (made.original, made.original_bytes, made.original_truncated) == (
        b"0123456789",
        16,
        True,
    )
    with pytest.raises(ValueError, match="max_bytes must be at least 0, not -1"):
        letter(b"x", max_bytes=-1)


def test_the_worst_case_letter_still_fits_under_the_broker_maximum_with_room_to_spare() -> None:
    """Longest reason, longest topic Kafka allows, largest original: about half the limit."""
    made = letter(
        b"\xff" * BROKER_MAX_BYTES,
        reason="\U0001f600" * (3 * REASON_CHARS_KEPT),  # 4 UTF-8 bytes a character
        topic="t" * 249,
        offset=2**63 - 1,
        partition=2**31 - 1,
    )
    assert len(made.reason) == REASON_CHARS_KEPT
    assert made.reason.endswith(f"(cut: {3 * REASON_CHARS_KEPT} characters in all)")
    assert len(encoded(made)) < BROKER_MAX_BYTES * 0.6


def test_a_short_reason_is_kept_as_it_is_and_time_to_the_millisecond() -> None:
    made = letter(b"x", failed_at=WHEN.replace(microsecond=123_456))
    assert made.reason == "Avro body is truncated (1048495 bytes): EOFError"
    assert made.failed_at == WHEN.replace(microsecond=123_000)


def test_letters_written_before_the_new_fields_read_as_whole_and_stageless() -> None:
    """BACKWARD: a v1 letter already on hub.dlq reads with today's schema and model."""
    (label, v1), *_ = history("DeadLetter")
    assert label == "v1"
    old = fastavro.parse_schema(v1)
    record = {
        "reason": "r",
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 1,
        "original": b"\x00\x01",
        "failed_at": WHEN.replace(microsecond=0),
    }
    data = encode(old, 1, record)
    read = DeadLetter.from_avro(decode_body(split_frame(data)[1], old, SCHEMA))
    assert (read.stage, read.original_bytes, read.original_truncated) == (None, None, False)
    assert read.original == b"\x00\x01"


@pytest.mark.parametrize(
    ("original_bytes", "truncated", "message"),
    [
        (None, True, "needs original_bytes"),
        (1, False, "shorter than the original kept"),
        (9, False, "must say whether"),
        (2, True, "must say whether"),
    ],
)
def test_a_letter_must_say_truthfully_what_it_kept(
    original_bytes: int | None, truncated: bool, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        DeadLetter(
            reason="r",
            source_topic="t",
            source_partition=0,
            source_offset=1,
            original=b"ab",
            failed_at=WHEN,
            original_bytes=original_bytes,
            original_truncated=truncated,
        )
