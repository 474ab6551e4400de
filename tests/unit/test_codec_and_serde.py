import struct

import pytest

from hub.codec import decode_body, encode, split_frame
from hub.errors import DecodeError, EventRejected, SchemaNotFound
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
from hub.registry import load_schema, schema_id_of
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
