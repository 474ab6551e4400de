import contextlib
import json
import random
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self, cast

import fastavro
import pytest
from pydantic import model_validator

from hub.codec import decode_body, encode, split_frame
from hub.errors import DecodeError, EventRejected, InputError, SchemaNotFound
from hub.models import (
    AuditRecord,
    ConsentRecord,
    DeadLetter,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    PartnerEvent,
)
from hub.schema_files import load_schema, schema_id_of
from hub.serde import Serde
from tests.unit import factories
from tests.unit.fakes import MemoryRegistry


@pytest.fixture
def serde() -> Serde:
    return Serde(MemoryRegistry())


@pytest.mark.parametrize(
    "payload",
    [
        None,
        EducationEvent(kind=EducationKind.EXCLUSION),
        HealthEvent(kind=HealthKind.AE_ATTENDANCE),
    ],
)
def test_partner_event_round_trips_through_its_schema(serde: Serde, payload) -> None:  # type: ignore[no-untyped-def]
    original = factories.event(payload=payload)
    data = serde.encode(original, "s-value")
    assert data[0] == 0
    assert serde.decode(data, PartnerEvent) == original


def test_consent_dead_letter_and_audit_round_trip(serde: Serde) -> None:
    consent = factories.consent()
    assert serde.decode(serde.encode(consent, "c-value"), ConsentRecord) == consent
    letter = DeadLetter(
        reason="r",
        source_topic="t",
        source_partition=1,
        source_offset=2,
        original=b"\x00\xff",
        failed_at=factories.WHEN,
    )
    assert serde.decode(serde.encode(letter, "d-value"), DeadLetter) == letter
    audit = AuditRecord(
        audit_id="a",
        at=factories.WHEN,
        actor="u",
        role="admin",
        action="person.read",
        outcome="ok",
    )
    assert serde.decode(serde.encode(audit, "a-value"), AuditRecord) == audit


def test_frame_carries_the_schema_id_big_endian(serde: Serde) -> None:
    data = serde.encode(factories.event(), "s-value")
    assert split_frame(data)[0] == schema_id_of(load_schema("PartnerEvent"))
    assert struct.unpack(">I", data[1:5])[0] == schema_id_of(load_schema("PartnerEvent"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "no value"),
        (b"", "shorter than the 5-byte"),
        (b"\x01\x00\x00\x00\x01abc", "not the Confluent magic byte"),
    ],
)
def test_unframed_bytes_are_decode_errors(data: bytes | None, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        split_frame(data)


def test_truncated_and_padded_bodies_are_rejected(serde: Serde) -> None:
    data = serde.encode(factories.event(), "s-value")
    with pytest.raises(DecodeError, match="truncated"):
        serde.decode(data[:-5], PartnerEvent)
    with pytest.raises(DecodeError, match="trailing bytes"):
        serde.decode(data + b"\x00", PartnerEvent)


def test_unknown_schema_id_and_wrong_record_type(serde: Serde) -> None:
    with pytest.raises(SchemaNotFound, match="schema id 99 is not registered"):
        serde.decode(b"\x00\x00\x00\x00\x63\x02", PartnerEvent)
    consent = serde.encode(factories.consent(), "c-value")
    with pytest.raises(DecodeError, match="is a ConsentRecord, not a PartnerEvent"):
        serde.decode(consent, PartnerEvent)


def test_valid_avro_with_invalid_content_is_rejected_by_field(serde: Serde) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    record = factories.event().to_avro()
    record["subject"] = {**record["subject"], "tokens": ["not-a-token"]}
    data = encode(registered.parsed, registered.schema_id, record)
    with pytest.raises(EventRejected) as caught:
        serde.decode(data, PartnerEvent)
    assert caught.value.errors[0][0] == "/subject/tokens/0"
    assert "not-a-token" not in str(caught.value)


def test_decode_body_rejects_a_body_that_does_not_match(serde: Serde) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    with pytest.raises(DecodeError):
        decode_body(b"\xff" * 40, registered.parsed)


# Hostile bytes. A partner can put any bytes on its topic: every one of them must come out
# of the decoder as a DecodeError (Serde.decode: an InputError), never as anything else.


def zigzag(n: int) -> bytes:
    """Avro's encoding of the long ``n``, any size (so out-of-range values can be written)."""
    unsigned = (n << 1) ^ (n >> 127)
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def one_field(field_type: object) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}


def logical(base: str, name: str) -> dict[str, Any]:
    return one_field({"type": base, "logicalType": name})


NODE = {
    "type": "record",
    "name": "Node",
    "namespace": "org.placehub.test",
    "fields": [{"name": "next", "type": ["null", "Node"]}],
}
EMPTY = {"type": "record", "name": "Empty", "fields": []}


TS_MILLIS = logical("long", "timestamp-millis")
STRINGS = one_field({"type": "array", "items": "string"})
HOSTILE = {
    "ts-millis-2pow62": (TS_MILLIS, zigzag(2**62), "out of range"),
    "ts-millis-negative": (TS_MILLIS, zigzag(-(2**62)), "out of range"),
    "ts-millis-max": (TS_MILLIS, zigzag(2**63 - 1), "out of range"),
    "ts-millis-year-300000": (TS_MILLIS, zigzag(300_000 * 365 * 86_400_000), "out of range"),
    "ts-micros": (logical("long", "timestamp-micros"), zigzag(2**62), "out of range"),
    "local-ts": (logical("long", "local-timestamp-millis"), zigzag(2**62), "out of range"),
    "date-far": (logical("int", "date"), zigzag(2**31 - 1), "out of range"),
    "date-before-year-1": (logical("int", "date"), zigzag(-(2**31)), "invalid for its type"),
    "time-millis": (logical("int", "time-millis"), zigzag(2**31 - 1), "invalid for its type"),
    "time-micros": (logical("long", "time-micros"), zigzag(2**62), "invalid for its type"),
    "uuid": (logical("string", "uuid"), zigzag(3) + b"abc", "invalid for its type"),
    "invalid-utf8": (one_field("string"), zigzag(2) + b"\xc3\x28", "not UTF-8"),
    "string-length-2pow62": (one_field("string"), zigzag(2**62), "truncated"),
    "bytes-length-2pow62": (one_field("bytes"), zigzag(2**62) + b"abc", "truncated"),
    "negative-length": (one_field("string"), zigzag(-5) + b"abcdef", "truncated"),
    "array-count-2pow62": (STRINGS, zigzag(2**62), "truncated"),
    "array-negative-count": (STRINGS, zigzag(-(2**62)) + zigzag(10), "truncated"),
    "map-count-2pow62": (one_field({"type": "map", "values": "long"}), zigzag(2**62), "truncated"),
    "union-index": (one_field(["null", "string"]), zigzag(5), "index is out of range"),
    "enum-index": (one_field({"type": "enum", "name": "E", "symbols": ["A"]}), zigzag(7), "index"),
    "short-double": (one_field("double"), b"\x00\x01", "truncated"),
    "unfinished-varint": (one_field("long"), b"\x80\x80", "past the end"),
    "deep-recursion": (NODE, b"\x02" * 200_000 + b"\x00", "nests records too deeply"),
    "2pow40-nulls": (one_field({"type": "array", "items": "null"}), zigzag(2**40), "take no bytes"),
    "2pow40-empty": (one_field({"type": "array", "items": EMPTY}), zigzag(2**40), "take no bytes"),
}


@pytest.mark.parametrize(("schema", "body", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_every_decoder_failure_on_hostile_bytes_is_a_decode_error(
    schema: dict[str, Any], body: bytes, message: str
) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        decode_body(body, fastavro.parse_schema(schema))
    assert body.hex() not in str(caught.value)
    assert str(2**62) not in str(caught.value)


def test_a_recursive_schema_still_reads_records_of_sensible_depth() -> None:
    schema = fastavro.parse_schema(NODE)
    record = {"next": {"next": {"next": None}}}
    assert decode_body(encode(schema, 1, record)[5:], schema) == record


def partner_event_schema_with_plain_longs() -> dict[str, Any]:
    """PartnerEvent as a hostile writer sees it: timestamps are just longs on the wire."""
    text = json.dumps(load_schema("PartnerEvent"))
    return cast(
        dict[str, Any], json.loads(text.replace('"logicalType": "timestamp-millis"', '"x": 0'))
    )


def partner_event_body(**longs: int) -> bytes:
    record = factories.event().to_avro()
    for name, value in record.items():
        if isinstance(value, datetime):
            record[name] = longs.get(name, int(value.timestamp() * 1000))
    return encode(fastavro.parse_schema(partner_event_schema_with_plain_longs()), 1, record)[5:]


@pytest.mark.parametrize("millis", [2**62, -(2**62), 2**63 - 1, 253_402_300_800_000])
def test_an_out_of_range_occurred_at_in_a_partner_event_is_a_decode_error(
    serde: Serde, millis: int
) -> None:
    """The issue's case: fastavro's OverflowError stopped the gate."""
    registered = serde.schema_for("PartnerEvent", "s-value")
    body = partner_event_body(occurred_at=millis)
    with pytest.raises(DecodeError, match="out of range") as caught:
        decode_body(body, registered.parsed)
    assert str(millis) not in str(caught.value)
    framed = struct.pack(">bI", 0, registered.schema_id) + body
    with pytest.raises(DecodeError, match="out of range"):
        serde.decode(framed, PartnerEvent)


def test_the_plain_long_partner_event_is_otherwise_a_good_one(serde: Serde) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    assert decode_body(partner_event_body(), registered.parsed)["partner_id"] == "council-housing"


def test_every_truncation_of_a_partner_event_is_a_decode_error(serde: Serde) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    body = serde.encode(factories.event(), "s-value")[5:]
    for length in range(len(body)):
        with pytest.raises(DecodeError):
            decode_body(body[:length], registered.parsed)


def hostile_bodies(good: bytes, seed: int, count: int) -> Iterator[bytes]:
    """Random bytes, random prefixes and bytes of ``good`` overwritten at random places."""
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randbytes(rng.randrange(0, 300))
        yield rng.randbytes(rng.randrange(1, 12)) + good[rng.randrange(len(good)) :]
        mutated = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        yield bytes(mutated)


def test_random_and_mutated_partner_event_bodies_decode_or_raise_decode_error(
    serde: Serde,
) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    good = serde.encode(factories.event(), "s-value")[5:]
    failures = 0
    for body in hostile_bodies(good, seed=20260302, count=3000):
        try:
            decode_body(body, registered.parsed)
        except DecodeError:
            failures += 1
    assert failures > 8000  # nearly all of the 9,000 (a byte flipped in a string may still read)


def test_random_and_mutated_framed_records_raise_only_input_errors(serde: Serde) -> None:
    for framed, model in [
        (serde.encode(factories.event(), "s-value"), PartnerEvent),
        (serde.encode(factories.consent(), "c-value"), ConsentRecord),
    ]:
        for body in hostile_bodies(framed[5:], seed=7, count=1000):
            with contextlib.suppress(InputError):
                serde.decode(framed[:5] + body, model)


def test_a_writer_schema_that_is_not_a_record_is_a_decode_error(serde: Serde) -> None:
    """An external registry may hold primitive schemas; reading one as a record failed."""
    registered = serde.registry.register("k-key", "string")  # type: ignore[arg-type]
    framed = struct.pack(">bI", 0, registered.schema_id) + zigzag(1) + b"a"
    with pytest.raises(DecodeError, match="is a unnamed schema, not a PartnerEvent"):
        serde.decode(framed, PartnerEvent)


class ReviewedLetter(DeadLetter):
    """A model whose rule does date arithmetic, as models may: far dates overflow in it."""

    @model_validator(mode="after")
    def _reviewed_within_a_century(self) -> Self:
        _ = self.failed_at + timedelta(days=36_525)
        return self


def test_an_error_a_model_rule_raises_on_a_hostile_value_is_an_event_rejected(
    serde: Serde,
) -> None:
    far = DeadLetter(
        reason="r",
        source_topic="t",
        source_partition=0,
        source_offset=1,
        original=b"",
        failed_at=datetime(9950, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(
        EventRejected, match=r"cannot be read as a ReviewedLetter \(OverflowError\)"
    ):
        serde.decode(serde.encode(far, "d-value"), ReviewedLetter)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (zigzag(2**62), "truncated"),
        (zigzag(-(2**62)), "truncated"),
        (zigzag(36) + b"\xff", "not UTF-8"),
    ],
    ids=["event-id-length-2pow62", "event-id-length-negative", "event-id-not-utf8"],
)
def test_a_partner_event_with_a_hostile_first_string_is_a_decode_error(
    serde: Serde, head: bytes, message: str
) -> None:
    registered = serde.schema_for("PartnerEvent", "s-value")
    good = serde.encode(factories.event(), "s-value")[5:]
    assert good[:1] == zigzag(36)  # event_id: a 36-character uuid comes first
    with pytest.raises(DecodeError, match=message):
        decode_body(head + good[len(head) :], registered.parsed)


def test_validation_errors_do_not_repeat_an_unknown_key_that_may_be_a_value() -> None:
    """A DLQ reason or 422 built from a model's error must not carry an identifier that a
    partner sent as a key; a key shaped like a field's name is still named."""
    from pydantic import BaseModel, ConfigDict, ValidationError

    from hub.serde import validation_errors

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = ""

    try:
        Strict.model_validate({"9434765919": 1, "nmae": "x"})
    except ValidationError as exc:
        errors = validation_errors(exc)
    assert sorted(pointer for pointer, _ in errors) == ["/-", "/nmae"]
    assert "9434765919" not in str(errors)
