"""Ingest: the SDK's publish rate vs raw producers sending the very same bytes.

Method. One partner's ``Publisher`` publishes pre-built drafts in batches of 500 (as
``placehub simulate`` does): validate, pseudonymise, Avro-encode, produce, wait for every
acknowledgement (acks=all, idempotent); then some of them one per call, each acknowledged
before the next (as a partner's own loop calling ``publish`` would). The bytes it wrote are
read back and sent again by a bare kafka-python ``KafkaProducer`` and a bare confluent-kafka
``Producer`` with the same settings (acks=all, idempotence, linger 5 ms) and the same batch,
flush, wait-for-acks pattern (one at a time: send, flush, wait for the ack). A warm-up
publish first registers the schema and creates the topic, so neither is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import islice

from confluent_kafka import Producer
from kafka import KafkaProducer

from connectors import EventDraft, Publisher
from connectors.simulate import PARTNERS, Place
from hub._admin import ensure_topic
from hub.config import Settings
from hub.kafka_clients import confluent_producer_options, kafka_python_producer_options
from hub.topics import Topics
from tests.bench.harness import Bench, Figure, median, prepare
from tests.integration.helpers import read_topic

__all__ = ["run"]

PARTNER = "council-housing"
BATCH = 500


def run(bench: Bench) -> list[Figure]:
    """SDK, raw kafka-python and raw confluent-kafka, each timed ``bench.repeats`` times."""
    events = 3_000 if bench.quick else 10_000
    singles = 300 if bench.quick else 1_000  # one at a time: what a partner's loop does
    settings = bench.hub("ingest")
    try:
        everyone = Place(seed=5, people=2_000).events(events * 100)  # lazy: taken as needed
        drafts = list(islice((draft for partner, draft in everyone if partner == PARTNER), events))
        topic = Topics(settings.topic_prefix).partner(PARTNER)
        prepare(settings)  # onboarded: the SDK creates no topic and registers no schema
        with Publisher(PARTNER, PARTNERS[PARTNER].source_system, settings) as publisher:
            publisher.publish(drafts[0])  # warm-up: the producer connected, the schema read
            sdk = [_rate(events, lambda: _sdk(publisher, drafts)) for _ in range(bench.repeats)]
            single = drafts[:singles]
            sdk_1 = [
                _rate(singles, lambda: _sdk(publisher, single, batch=1))
                for _ in range(bench.repeats)
            ]
        sent = [(key or b"", value or b"") for key, value, _ in read_topic(settings, topic)]
        payload = sent[1 : events + 1]  # the SDK's bytes of one timed run, warm-up left out
        for name in ("raw-kafka-python", "raw-confluent"):
            ensure_topic(settings, settings.topic_prefix + name, partitions=settings.partitions)
        kp = _kafka_python(settings, payload, bench.repeats)
        kp_1 = _kafka_python(settings, payload[:singles], bench.repeats, batch=1)
        ck = _confluent(settings, payload, bench.repeats)
    finally:
        bench.delete(settings)
    bench.progress(
        f"  SDK {median(sdk):,.0f}/s, kafka-python {median(kp):,.0f}/s, "
        f"confluent-kafka {median(ck):,.0f}/s; one at a time: SDK {median(sdk_1):,.0f}/s, "
        f"kafka-python {median(kp_1):,.0f}/s"
    )
    size = f"~{sum(len(v) for _, v in payload) // len(payload)} bytes"
    note = f"{events} events of {size} in batches of {BATCH}"
    common = {"unit": "events/s", "note": note, "runs": sdk}
    return [
        Figure(
            "ingest",
            "SDK publish (validate + pseudonymise + encode + produce, acked)",
            median(sdk),
            baseline="raw kafka-python producer, same bytes",
            baseline_value=median(kp),
            target="≥ 0.8x raw kafka-python",
            met=median(sdk) >= 0.8 * median(kp),
            baseline_runs=kp,
            **common,  # type: ignore[arg-type]
        ),
        Figure(
            "ingest",
            "SDK publish (as above)",
            median(sdk),
            baseline="raw confluent-kafka producer, same bytes",
            baseline_value=median(ck),
            baseline_runs=ck,
            **common,  # type: ignore[arg-type]
        ),
        Figure(
            "ingest",
            "SDK publish, one event per call (publish)",
            median(sdk_1),
            "events/s",
            "raw kafka-python, send + flush + ack per event",
            median(kp_1),
            note=f"{singles} events of {size}, each acknowledged before the next",
            runs=sdk_1,
            baseline_runs=kp_1,
        ),
    ]


def _rate(events: int, send: Callable[[], None]) -> float:
    started = time.perf_counter()
    send()
    return events / (time.perf_counter() - started)


def _sdk(publisher: Publisher, drafts: Sequence[EventDraft], batch: int = BATCH) -> None:
    for start in range(0, len(drafts), batch):
        publisher.publish_many(drafts[start : start + batch])


def _kafka_python(
    settings: Settings, payload: Sequence[tuple[bytes, bytes]], runs: int, batch: int = BATCH
) -> list[float]:
    producer = KafkaProducer(
        **kafka_python_producer_options(settings),
        linger_ms=5,
    )
    topic = settings.topic_prefix + "raw-kafka-python"

    def send() -> None:
        for start in range(0, len(payload), batch):
            futures = [
                producer.send(topic, key=key, value=value)
                for key, value in payload[start : start + batch]
            ]
            producer.flush()  # as the SDK does: it waits for the acks anyway
            for future in futures:
                future.get(timeout=30)

    try:
        producer.send(topic, key=b"warm-up", value=b"").get(timeout=30)
        return [_rate(len(payload), send) for _ in range(runs)]
    finally:
        producer.close()


def _confluent(
    settings: Settings, payload: Sequence[tuple[bytes, bytes]], runs: int
) -> list[float]:
    producer = Producer(
        {
            **confluent_producer_options(settings),
            "linger.ms": 5,
        }
    )
    topic = settings.topic_prefix + "raw-confluent"

    def send() -> None:
        for start in range(0, len(payload), BATCH):
            for key, value in payload[start : start + BATCH]:
                producer.produce(topic, key=key, value=value)
            producer.flush(30)

    producer.produce(topic, key=b"warm-up", value=b"")
    producer.flush(30)
    return [_rate(len(payload), send) for _ in range(runs)]
