"""The pinned Kafka 4.x broker works with every pinned client: kafka-python, aiokafka and
the connectors' confluent-kafka.

(Faust rides on aiokafka; the walking-skeleton tests exercise it end to end.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaProducer

from connectors.delivery import Delivery, Outgoing
from hub._admin import ensure_topic
from hub.config import Settings
from hub.partitions import partition_for
from tests.integration.helpers import ends, read_topic


def test_broker_speaks_kafka_4(broker_settings: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker_settings.bootstrap_servers)
    try:
        # kafka-python infers the broker version from the API versions it advertises.
        version = admin._client.check_version()
    finally:
        admin.close()
    assert version >= (4, 0)


def test_kafka_python_and_aiokafka_interoperate(broker_settings: Settings) -> None:
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    servers = broker_settings.bootstrap_servers
    ensure_topic(broker_settings, topic, partitions=1)  # the broker creates none on demand
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
    producer.send(topic, key=b"k", value=b"from kafka-python").get(timeout=10)
    producer.close()

    async def aiokafka_round() -> list[bytes]:
        sender = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
        await sender.start()
        await sender.send_and_wait(topic, b"from aiokafka", key=b"k")
        await sender.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=servers, group_id=f"g-{topic}", auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < 2:
                batch = await consumer.getmany(timeout_ms=5000)
                assert batch, "aiokafka consumer got nothing within 5 s"
                got.extend(m.value for records in batch.values() for m in records if m.value)
            await consumer.commit()
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(aiokafka_round()) == [b"from kafka-python", b"from aiokafka"]
    assert [value for _, value, _ in read_topic(broker_settings, topic)] == [
        b"from kafka-python",
        b"from aiokafka",
    ]


def test_the_connectors_producer_puts_each_key_where_the_hub_and_kafka_python_do(
    broker_settings: Settings,
) -> None:
    """The connectors send through librdkafka (``connectors.delivery``); a person's events
    must land on the partition the workers' routing and every other client give the key,
    or a person's events would be split (issue 15)."""
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    ensure_topic(broker_settings, topic, partitions=6)
    keys = [f"nhs:hyeuty7s:{n:043d}".encode() for n in range(120)] + [b"c-1", b"\xff" * 7]
    with Delivery(broker_settings) as delivery:
        receipts = delivery.deliver(
            [Outgoing(topic, key, b"v", f"id-{n}") for n, key in enumerate(keys)]
        )
    # partition_for is kafka-python's murmur2 (the Java client's), as the workers route.
    assert [r.partition for r in receipts] == [partition_for(key, 6) for key in keys]
    assert len({r.partition for r in receipts}) == 6
    written = Counter(r.partition for r in receipts)
    assert ends(broker_settings, topic) == {p: written[p] for p in range(6)}
    assert sorted(r.offset for r in receipts if r.partition == 0) == list(range(written[0]))
