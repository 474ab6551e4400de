"""Ingest: the SDK's publish rate vs raw producers sending the very same bytes.

Method. One partner's ``Publisher`` publishes pre-built drafts in batches of 500 (as
``placehub simulate`` does): validate, pseudonymise, Avro-encode, produce, wait for every
acknowledgement (acks=all, idempotent); then some of them one per call, each acknowledged
before the next (as a partner's own loop calling ``publish`` would). The bytes the SDK frames
for the same drafts are sent by a bare kafka-python ``KafkaProducer`` and a bare
confluent-kafka ``Producer`` with the same settings (acks=all, idempotence, linger 5 ms) and
the same batch, flush, wait-for-acks pattern (one at a time: send, flush, wait for the ack).
The SDK and the kafka-python producers take turns, run by run, so the machine's drift falls
on each alike. kafka-python's batches are its default 16 KiB, as a partner's own producer
would have them; a second bare producer with the SDK's batch size (``BATCH_BYTES``) shows
how much of the ratio that choice makes. A warm-up publish first connects the producer and
reads the schema, so neither is timed.

The SDK's own producer is confluent-kafka's (``connectors.delivery``), so the bare
confluent-kafka figure is its floor: what the SDK costs beyond it is its own work
(validation, tokens, Avro). Bare kafka-python stays item 6's baseline, as issue 15 sets it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from itertools import islice

from confluent_kafka import Producer
from kafka import KafkaProducer

from connectors import EventDraft, Publisher
from connectors.delivery import BATCH_BYTES
from connectors.simulate import PARTNERS, Place
from hub._admin import ensure_topic
from hub.config import Settings
from hub.kafka_clients import confluent_producer_options, kafka_python_producer_options
from tests.bench.harness import Bench, Figure, median, prepare

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
        prepare(settings)  # onboarded: the SDK creates no topic and registers no schema
        for name in ("raw-kafka-python", "raw-kafka-python-batched", "raw-confluent"):
            ensure_topic(settings, settings.topic_prefix + name, partitions=settings.partitions)
        with Publisher(PARTNER, PARTNERS[PARTNER].source_system, settings) as publisher:
            publisher.publish(drafts[0])  # warm-up: the producer connected, the schema read
            # The bytes the SDK frames for these drafts (event ids and times of their own):
            # what the raw producers send.
            payload = [(item.key, item.value) for item in map(publisher.prepare, drafts)]
            single = drafts[:singles]
            with ExitStack() as producers:
                kp_send = _kafka_python(producers, settings, "raw-kafka-python", payload)
                kpb_send = _kafka_python(
                    producers, settings, "raw-kafka-python-batched", payload, batch_size=BATCH_BYTES
                )
                kp_1_send = _kafka_python(
                    producers, settings, "raw-kafka-python", payload[:singles], 1
                )
                # In turn, run by run, so that the machine's drift falls on each alike.
                sdk, kp, kpb = _in_turn(
                    bench.repeats,
                    (events, lambda: _sdk(publisher, drafts)),
                    (events, kp_send),
                    (events, kpb_send),
                )
                sdk_1, kp_1 = _in_turn(
                    bench.repeats,
                    (singles, lambda: _sdk(publisher, single, batch=1)),
                    (singles, kp_1_send),
                )
        ck = _confluent(settings, payload, bench.repeats)
    finally:
        bench.delete(settings)
    bench.progress(
        f"  SDK {median(sdk):,.0f}/s, kafka-python {median(kp):,.0f}/s "
        f"({median(kpb):,.0f}/s in the SDK's batch size), confluent-kafka {median(ck):,.0f}/s; "
        f"one at a time: SDK {median(sdk_1):,.0f}/s, kafka-python {median(kp_1):,.0f}/s"
    )
    size = f"~{sum(len(v) for _, v in payload) // len(payload)} bytes"
    note = f"{events} events of {size} in batches of {BATCH}, timed in turn with the SDK"
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
            baseline=f"raw kafka-python producer, same bytes, the SDK's {BATCH_BYTES // 1024} "
            "KiB batches",
            baseline_value=median(kpb),
            baseline_runs=kpb,
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
            note=f"{singles} events of {size}, each acknowledged before the next, in turn",
            runs=sdk_1,
            baseline_runs=kp_1,
        ),
    ]


def _in_turn(runs: int, *timed: tuple[int, Callable[[], None]]) -> list[list[float]]:
    """Each ``(events, send)`` timed ``runs`` times, taking turns: the rates, by sender."""
    rates: list[list[float]] = [[] for _ in timed]
    for _ in range(runs):
        for found, (events, send) in zip(rates, timed, strict=True):
            found.append(_rate(events, send))
    return rates


def _rate(events: int, send: Callable[[], None]) -> float:
    started = time.perf_counter()
    send()
    return events / (time.perf_counter() - started)


def _sdk(publisher: Publisher, drafts: Sequence[EventDraft], batch: int = BATCH) -> None:
    publisher.token_of.cache_clear()  # each run starts with no token kept, as a new load
    for start in range(0, len(drafts), batch):
        publisher.publish_many(drafts[start : start + batch])


def _kafka_python(
    producers: ExitStack,
    settings: Settings,
    name: str,
    payload: Sequence[tuple[bytes, bytes]],
    batch: int = BATCH,
    **producer: int,
) -> Callable[[], None]:
    """A bare kafka-python producer's send of ``payload`` to topic ``name``, in batches of
    ``batch`` (each flushed and its acks awaited, as the SDK does); ``producers`` closes it."""
    client = KafkaProducer(**kafka_python_producer_options(settings), linger_ms=5, **producer)
    producers.callback(client.close)
    topic = settings.topic_prefix + name

    def send() -> None:
        for start in range(0, len(payload), batch):
            futures = [
                client.send(topic, key=key, value=value)
                for key, value in payload[start : start + batch]
            ]
            client.flush()  # as the SDK does: it waits for the acks anyway
            for future in futures:
                future.get(timeout=30)

    client.send(topic, key=b"warm-up", value=b"").get(timeout=30)
    return send


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
