"""Pipeline: events/s through hub workers (gate → identity → view) vs a raw aiokafka loop.

Method. Consents for every simulated person are loaded first and the worker is started and
left to absorb them (its consents table's changelog holds them all), so start-up, table
recovery and consent loading are not timed. Then a batch of already-encoded events (the
SDK's exact bytes) is produced into the partner topics with confluent-kafka as fast as the
broker takes them, and the clock runs from the first send. The hub's books (``GET
/v1/partners/{id}/status`` for each partner in the batch, which adds up every worker's
share; read every 0.2 s) give two times: until ``received`` has grown by the batch (the
gate has read it all), and until ``in_view`` + ``duplicate`` has grown by the batch with
nothing ``in_flight`` (gate → identity → view). The batch is repeated on the same worker
with new events for the same people; the median is reported. Two workers: the same on a
hub whose topics have four partitions, both workers started and settled before the first
batch. Reading the books is not free: each partner's status is a pass over the worker's
tables, so the progress lines say how long one reading took, and ``--profile`` shows its
share of the worker's time.

Baseline: an ``AIOKafkaConsumer`` assigned the same partitions reads the same records from
the beginning and Avro-decodes each value with fastavro (no Faust, no hub logic), timed
from its first record. Also
measured, to show where the time goes: a bare Faust agent doing the same decode
(``faust_floor``), and one that also forwards each record to another topic, as each hub
stage does; and a confluent-kafka loop that consumes, decodes and produces each record to
one topic (what one hop costs without Faust).
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition

from connectors.simulate import PARTNERS, Place
from hub.codec import split_frame
from hub.config import PROJECT_ROOT, Settings
from hub.registry import load_schema
from hub.topics import Topics
from tests.bench.harness import (
    POLL_S,
    Bench,
    Figure,
    Record,
    assert_alive,
    books,
    encode,
    median,
    partners_of,
    placed_in_views,
    prepare,
    produce,
    wait_for_consents,
)
from tests.integration.helpers import WorkerProcess, worker_env

__all__ = ["raw_consume_rate", "run"]

# Bare Faust agents run beside the hub (see faust_floor): mode -> what the table calls it.
FLOORS = {
    "floor": "consume + decode",
    "floor-topic": "decode + Topic.send to one topic",
    "floor-producer": "decode + producer.send to one topic",
}


def run(bench: Bench) -> list[Figure]:
    """One worker, then two workers on four partitions, each beside the raw consume loop."""
    events = 5_000 if bench.quick else 10_000
    figures: list[Figure] = []
    one = _throughput(bench, "pipeline-1", workers=1, events=events)
    held = {"1 worker": one.pop("held")[0]}
    raw = one.pop("raw")
    floors = {what: one.pop(mode) for mode, what in FLOORS.items()}
    confluent = one.pop("confluent")
    two = _throughput(bench, "pipeline-2", workers=2, events=events)
    two.pop("raw")
    held["2 workers, 4 partitions"] = two.pop("held")[0]
    target = "≥ 10,000/s per worker and ≥ 0.5x raw"
    for label, result in (("1 worker", one), ("2 workers, 4 partitions", two)):
        for stage, what in (("gate", "received by the gate"), ("view", "gate → identity → view")):
            value = median(result[stage])
            figures.append(
                Figure(
                    "pipeline",
                    f"{label}: {what}",
                    value,
                    "events/s",
                    "raw aiokafka consume + Avro decode (1 process)",
                    median(raw),
                    target=target if stage == "view" else "",
                    met=(value >= 10_000 * (1 if label == "1 worker" else 2))
                    and value >= 0.5 * median(raw)
                    if stage == "view"
                    else None,
                    note=_note(label, events, held[label]),
                    runs=result[stage],
                    baseline_runs=raw,
                )
            )
    floors = {f"bare Faust agent, 1 worker: {what}": runs for what, runs in floors.items()}
    floors["raw confluent-kafka loop: consume + decode + produce to one topic"] = confluent
    for what, runs in floors.items():
        figures.append(
            Figure(
                "pipeline",
                what,
                median(runs),
                "events/s",
                "raw aiokafka consume + Avro decode (1 process)",
                median(raw),
                note="floors: what one hop costs in each client, no hub logic",
                runs=runs,
                baseline_runs=raw,
            )
        )
    return figures


def _note(label: str, events: int, held: float) -> str:
    note = f"{events:,} events per batch over {len(PARTNERS)} partner topics; no patterns stage yet"
    if held:
        note += (
            f"; {label}: {held:.0f} events held or dead-lettered though every consent was loaded"
        )
    return note


def _throughput(bench: Bench, name: str, workers: int, events: int) -> dict[str, list[float]]:
    settings = bench.hub(name)
    try:
        prepare(settings)
        place = Place(seed=11, people=events, consent_rate=1.0)
        consents, _ = encode(settings, [place.consent(person) for person in place.people], [])
        batches = [encode(settings, [], place.events(events))[1] for _ in range(bench.repeats)]
        partners = sorted(set().union(*map(partners_of, batches)))
        produce(settings, consents)
        bench.progress(f"  {name}: {len(consents)} consents loaded; starting {workers} worker(s)")
        rates: dict[str, list[float]] = {"gate": [], "view": [], "raw": [], "held": [0]}
        profiled = bench.profile and workers == 1  # one profile per run: the one-worker pass
        extra = {"bench_profile": bench.profile_path(name)} if profiled else {}
        with bench.workers(settings, count=workers, **extra) as started:
            wait_for_consents(settings, len(consents))
            for n, batch in enumerate(batches, start=1):
                timing = _time_batch(settings, started, partners, batch)
                rates["gate"].append(events / timing.gate_s)
                rates["view"].append(timing.placed / timing.view_s)
                rates["held"] = [timing.held]
                bench.progress(
                    f"  {name} batch {n}: gate {events / timing.gate_s:,.0f}/s, view "
                    f"{timing.placed / timing.view_s:,.0f}/s, held or dead-lettered {timing.held}; "
                    f"books of every partner read in {timing.read_ms:.0f} ms"
                )
        if workers == 1:
            rates["raw"] = [raw_consume_rate(settings, events) for _ in range(bench.repeats)]
            rates["confluent"] = [raw_forward_rate(settings, events)]
            for mode in FLOORS:
                rates[mode] = [_faust_floor(bench, settings, events, mode)]
            bench.progress(
                f"  raw aiokafka loop: {', '.join(f'{r:,.0f}/s' for r in rates['raw'])}; "
                + ", ".join(f"Faust {mode} {rates[mode][0]:,.0f}/s" for mode in FLOORS)
                + f", confluent-kafka one hop {rates['confluent'][0]:,.0f}/s"
            )
        return rates
    finally:
        bench.delete(settings)


@dataclass
class BatchTiming:
    """How long one batch took to pass the gate and to be placed in views."""

    gate_s: float
    view_s: float
    placed: int  # of this batch's events, in a view (or recognised as duplicates)
    held: int  # held in quarantine or dead-lettered (all consents were loaded: should be 0)
    read_ms: float  # median time to read the books once: the measuring's own cost


def _time_batch(
    settings: Settings, workers: list[WorkerProcess], partners: list[str], batch: list[Record]
) -> BatchTiming:
    """Time until the gate has received all of ``batch``, then until none is in flight.

    Events the gate quarantined or dead-lettered settle too (they are not lost, but with
    every consent loaded there should be none): their number is reported, and only the
    events placed in views count towards the end-to-end rate.
    """
    before = books(workers[0], partners)
    started = time.perf_counter()
    produce(settings, batch)
    gate_s = 0.0
    deadline = 60 + len(batch) / 100  # even 100 events/s finishes in time
    reads: list[float] = []
    while True:
        asked = time.perf_counter()
        counts = books(workers[0], partners)
        reads.append((time.perf_counter() - asked) * 1000)
        now = time.perf_counter() - started
        grown = {name: counts.get(name, 0) - before.get(name, 0) for name in counts}
        if not gate_s and grown["received"] >= len(batch):
            gate_s = now
        if gate_s and counts["in_flight"] == 0:
            placed = placed_in_views(counts) - placed_in_views(before)
            held = grown["held_in_quarantine"] + grown["dead_lettered"]
            return BatchTiming(gate_s, now, placed, held, median(reads))
        if now > deadline:
            raise TimeoutError(f"pipeline did not settle {len(batch)} events in time: {grown}")
        assert_alive(workers)
        time.sleep(POLL_S)


def _faust_floor(bench: Bench, settings: Settings, events: int, mode: str) -> float:
    """Rate of a bare Faust agent over the same topics (``tests.bench.faust_floor``)."""
    out = bench.root / f"{settings.app_id}-{mode}.json"
    command = [sys.executable, "-m", "tests.bench.faust_floor", str(events), str(out)]
    forward = mode.removeprefix("floor").strip("-")
    subprocess.run(
        [*command, *(["--forward", forward] if forward else [])],
        env=worker_env(settings),
        cwd=PROJECT_ROOT,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rate: float = json.loads(out.read_text())["rate"]
    return rate


def raw_forward_rate(settings: Settings, events: int) -> float:
    """Records/s of a confluent-kafka consume + decode + produce-to-one-topic loop (one hop)."""
    topics = Topics(settings.topic_prefix)
    schema: Any = fastavro.parse_schema(load_schema("PartnerEvent"))
    sink = f"{settings.topic_prefix}raw-forward"
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.app_id}-raw-forward",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    consumer.assign(
        [
            ConfluentPartition(topics.partner(partner), p, OFFSET_BEGINNING)
            for partner in PARTNERS
            for p in range(settings.partitions)
        ]
    )
    try:
        count = 0
        started = 0.0
        while count < events:
            for message in consumer.consume(num_messages=1_000, timeout=1.0):
                started = started or time.perf_counter()  # from the first record: no start-up
                if message.error() is not None:
                    continue
                value = message.value() or b""
                _, body = split_frame(value)
                fastavro.schemaless_reader(io.BytesIO(body), schema)
                while True:
                    try:
                        producer.produce(sink, key=message.key(), value=value)
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
            producer.poll(0)  # serve delivery reports once per batch
        producer.flush(60)
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def raw_consume_rate(settings: Settings, events: int) -> float:
    """Records/s of a bare aiokafka consume + fastavro decode over the partner topics."""
    return asyncio.run(_raw_consume(settings, events))


async def _raw_consume(settings: Settings, events: int) -> float:
    topics = Topics(settings.topic_prefix)
    schema: Any = fastavro.parse_schema(load_schema("PartnerEvent"))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topics.partner(partner), p)
            for partner in PARTNERS
            for p in range(settings.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count = 0
        started = 0.0
        while count < events:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                started = started or time.perf_counter()  # from the first record: no start-up
                for record in records:
                    _, body = split_frame(record.value)
                    fastavro.schemaless_reader(io.BytesIO(body), schema)
                    count += 1
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
