"""Standard tooling against the hub: Confluent's own client reads hub topics via our registry.

``confluent_kafka``'s ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``
(and librdkafka's consumer and producer) are clients nobody here wrote; they talk to a
worker's registry over HTTP exactly as they would to a Confluent Schema Registry.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors import ConsentDraft, EventDraft, Publisher
from hub.codec import split_frame
from hub.config import Settings
from hub.models import (
    BasisKind,
    CareService,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    PartnerEvent,
    PoliceEvent,
    PoliceKind,
    ReferralEvent,
    ReferralKind,
    ReferralReason,
    SocialCareEvent,
    SocialCareKind,
)
from hub.registry import SchemaRegistry
from hub.schema_files import load_schema
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, read_topic, wait_for_records

NHS = "943 476 5919"
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # well within retention
PARTNER_READER = "city-health-feed:demo-partner-health"  # user id:token (deploy/local)
ADMIN = "admin:demo-admin"
BASIS = LawfulBasis(kind=BasisKind.CONSENT, consent_id="c-interop", purpose="early-help")


def consent() -> ConsentDraft:
    return ConsentDraft(
        consent_id="c-interop",
        identifiers={"nhs": NHS},
        purposes=["early-help"],
        sharing_partners=["council-housing", "city-health", "northfield-school"],
    )


def draft(payload: Any) -> EventDraft:
    return EventDraft(
        source_ref="HSG-0042",
        identifiers={"nhs": NHS},
        basis=BASIS,
        payload=payload,
        occurred_at=WHEN,
        area_code="E05000001",
    )


def consume(
    settings: Settings, topic: str, deserializer: AvroDeserializer, count: int
) -> list[dict[str, Any]]:
    """``count`` records of ``topic`` from the start, decoded by Confluent's deserializer.

    Raises AssertionError if fewer than ``count`` arrive within 30 s.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            context = SerializationContext(topic, MessageField.VALUE)
            records.append(deserializer(message.value(), context))
    finally:
        consumer.close()
    assert len(records) >= count, f"{topic}: {len(records)} of {count} records consumed in 30s"
    return records


def test_confluent_deserializer_reads_hub_events_via_the_hub_registry(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    payloads = [
        HousingEvent(kind=HousingKind.ARREARS),
        PoliceEvent(kind=PoliceKind.DOMESTIC_INCIDENT, children_present=True),
        SocialCareEvent(kind=SocialCareKind.PLAN_OPENED, service=CareService.EARLY_HELP),
        ReferralEvent(
            kind=ReferralKind.MADE,
            from_partner="council-housing",
            to_partner="city-health",
            reason_code=ReferralReason.MENTAL_HEALTH,
        ),
    ]
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent())
        sent = [housing.publish(draft(payload)).event_id for payload in payloads]
    topic = Topics(settings.topic_prefix).events
    raw = wait_for_records(settings, topic, len(payloads))
    assert len(raw) == len(payloads)

    # A partner reads schemas with its own credentials (HTTP Basic: user id and token).
    client = SchemaRegistryClient({"url": worker.url, "basic.auth.user.info": PARTNER_READER})
    theirs = consume(settings, topic, AvroDeserializer(client, return_record_name=True), len(raw))

    ours = Serde(SchemaRegistry(settings))
    by_id = {record["event_id"]: record for record in theirs}
    assert sorted(by_id) == sorted(sent)
    for _, value, _ in raw:
        record = ours.decode_record(value, "PartnerEvent")
        assert by_id[record["event_id"]] == record
    assert {PartnerEvent.from_avro(r).payload for r in theirs} == set(payloads)


def evolved(v1: dict[str, Any]) -> dict[str, Any]:
    """v2 of the envelope: HousingEvent gains an optional tenure (a new field with a default)."""
    v2 = copy.deepcopy(v1)
    payload = next(f for f in v2["fields"] if f["name"] == "payload")
    housing = next(b for b in payload["type"] if b["name"] == "HousingEvent")
    housing["fields"].append(
        {
            "name": "tenure",
            "type": [
                "null",
                {"type": "enum", "name": "Tenure", "symbols": ["SOCIAL", "PRIVATE", "TEMPORARY"]},
            ],
            "default": None,
            "doc": "Tenure of the home, if known.",
        }
    )
    return v2


def test_old_and_new_consumers_read_records_of_both_schema_versions(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    topic = topics.partner("council-housing")
    # Registering v2 is a registry write, so an admin's.
    client = SchemaRegistryClient({"url": worker.url, "basic.auth.user.info": ADMIN})
    v1 = load_schema("PartnerEvent")
    v2 = evolved(v1)
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent())
        first = housing.to_event(draft(HousingEvent(kind=HousingKind.ARREARS))).to_avro()
        second = housing.to_event(draft(HousingEvent(kind=HousingKind.NOTICE_SERVED))).to_avro()
    second["payload"] = (second["payload"][0], {**second["payload"][1], "tenure": "TEMPORARY"})

    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    producer.produce(topic, AvroSerializer(client, json.dumps(v1))(first, context), b"k")
    # Registering v2 goes through the hub's BACKWARD check over HTTP; then write with it.
    producer.produce(topic, AvroSerializer(client, json.dumps(v2))(second, context), b"k")
    assert producer.flush(30) == 0
    assert client.get_versions(f"{topic}-value") == [1, 2]
    written = [split_frame(value)[0] for _, value, _ in read_topic(settings, topic)[-2:]]
    assert written == [client.get_version(f"{topic}-value", n).schema_id for n in (1, 2)]

    old = consume(settings, topic, AvroDeserializer(client, json.dumps(v1)), 2)
    new = consume(settings, topic, AvroDeserializer(client, json.dumps(v2)), 2)

    assert [r["payload"] for r in old] == [
        {"kind": "ARREARS", "arrears_band": None, "notice_type": None, "homelessness_duty": None},
        {
            "kind": "NOTICE_SERVED",
            "arrears_band": None,
            "notice_type": None,
            "homelessness_duty": None,
        },
    ]
    assert [r["payload"]["tenure"] for r in new] == [None, "TEMPORARY"]
    assert (
        [r["event_id"] for r in old]
        == [r["event_id"] for r in new]
        == [
            first["event_id"],
            second["event_id"],
        ]
    )
    # The hub itself is an old consumer: it reads both as its own version and admits them.
    admitted = wait_for_records(settings, topics.events, 2)
    assert len(admitted) == 2
    assert read_topic(settings, topics.dlq) == []
