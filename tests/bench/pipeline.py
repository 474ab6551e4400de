"""Pipeline: events/s through hub workers (gate → identity → view → patterns) vs a raw
aiokafka loop, and what the patterns stages cost.

Method. Consents for every simulated person are loaded first and the workers are started
and left to absorb them (their consents table's changelog holds them all), so start-up,
table recovery and consent loading are not timed. Then a batch of already-encoded events
(the SDK's exact bytes) is produced into the partner topics with confluent-kafka as fast as
the broker takes them, and the clock runs from the first send. Three times are taken:

- *received by the gate*: the hub's books (``GET /v1/partners/status``, which adds up every
  worker's share; read every 0.2 s) show ``received`` grown by the batch;
- *gate → identity → view*: the books show ``in_view`` + ``duplicate`` grown by the batch
  with nothing ``in_flight``;
- *gate → identity → view → patterns* (the figure with the target): after that, the stages'
  own marks (``tests.bench.marks``, read every 0.2 s) show the view, then the
  patterns-people stage, then the patterns stage having absorbed everything on their input
  topics, each stage's input ends read only after the stage before it was found done. A
  stage writes its marks after the batch's outputs are delivered, so this cannot stop
  before the last delta is counted and hub.patterns has what disclosure control lets out.

The batches are repeated on the same workers with new events for the same people; the
median is reported. Reading the books is not free (each reading is a pass over the
worker's tables): the progress lines say how long one took, and ``--profile`` shows its
share of the worker's time.

What the patterns stages cost: two one-worker hubs run side by side, one with
``PLACEHUB_PATTERNS_ENABLED=false`` (no patterns stages; the view sends no timelines to
them), and each batch goes to one hub and then, the same bytes, to the other, so a change
in the machine's load falls on both. Without the patterns the clock stops when the view's
marks cover its inputs, by the same rule. The ratio is end to end with the patterns over
end to end without. (Each hub's idle worker costs the other a little CPU; with
``--profile`` the worker with the patterns runs under the profiler, so that ratio is not
comparable.) Two workers: a hub whose topics have four partitions, with the patterns,
both workers started and settled before the first batch.

The worker's CPU per event: its process's user and system CPU time (``psutil``) from a
batch's first send until the chain has settled, over the events placed in views, for the
worker with the patterns and, the same batches, the one without. A rate on a shared
two-core machine moves with everything else running; CPU time much less so.

Baseline: an ``AIOKafkaConsumer`` assigned the same partitions reads the same records from
the beginning and Avro-decodes each value with fastavro (no Faust, no hub logic), timed
from its first record. Also measured, to show where the time goes: a bare Faust agent doing
the same decode (``faust_floor``), and one that also forwards each record to another
topic, as each hub stage does; and a confluent-kafka loop that consumes, decodes and
produces each record to one topic (what one hop costs without Faust).
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
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from prometheus_client.parser import text_string_to_metric_families

from connectors.simulate import PARTNERS, Place
from hub._admin import ensure_topic
from hub.codec import split_frame
from hub.config import PROJECT_ROOT, Settings
from hub.kafka_clients import aiokafka_options, confluent_options, confluent_producer_options
from hub.schema_files import load_schema
from hub.stages.context import Internal
from hub.topics import Topics
from tests.bench.chain_alone import Chain, chain_alone
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
from tests.bench.identity_alone import identity_rate
from tests.bench.marks import MarksReader
from tests.bench.peer import PEER, quix_fold_rate
from tests.integration.helpers import WorkerProcess, worker_env

__all__ = ["raw_consume_rate", "run"]

# Bare Faust agents run beside the hub (see faust_floor): mode -> what the table calls it.
FLOORS = {
    "floor": "consume + decode",
    "floor-topic": "decode + Topic.send to one topic",
    "floor-producer": "decode + producer.send to one topic",
}


def run(bench: Bench) -> list[Figure]:
    """One worker with and without the patterns stages, then two workers on four
    partitions, each beside the raw consume loop."""
    events = 5_000 if bench.quick else 10_000
    on, off, two = (bench.hub(name) for name in ("pipeline-1", "pipeline-1-off", "pipeline-2"))
    try:
        load = _load(on, events, bench.repeats)
        paired, per_batch = _paired(bench, on, off, load)
        base = _baselines(bench, on, events)
        alone = [identity_rate(on, batch) for batch in load.batches]
        bench.progress(f"  identity alone: {', '.join(f'{r:,.0f}/s' for r in alone)}")
        chains = [chain_alone(on, load.consents, batch) for batch in load.batches]
        for chain in chains:
            bench.progress(f"  the chain's stages alone: {chain.rate:,.0f}/s ({_costs(chain)})")
    finally:
        bench.delete(on)
        bench.delete(off)
    try:
        twin = _throughput(bench, two, "pipeline-2", workers=2, load=load)
    finally:
        bench.delete(two)
    raw, peer = base.pop("raw"), base.pop("peer")
    figures: list[Figure] = []
    for label, result in (("1 worker", paired["on"]), ("2 workers, 4 partitions", twin)):
        figures += _stage_figures(label, result, raw, events)
    figures += _peer_figures(paired["on"]["settled"], peer, raw, events, per_batch)
    figures.append(_identity_figure(alone, paired["on"]["settled"]))
    figures.append(_chain_figure(chains, peer))
    figures.append(_cost_figure(paired, events))
    figures.append(_cpu_figure(paired))
    for what, runs in base.items():
        figures.append(
            Figure(
                "pipeline",
                what,
                median(runs),
                "events/s",
                RAW,
                median(raw),
                note="floors: what one hop costs in each client, no hub logic",
                runs=runs,
                baseline_runs=raw,
            )
        )
    return figures


RAW = "raw aiokafka consume + Avro decode (1 process)"
SCRAPE_TOKEN = "bench-scrape-token-0123456789"  # the first hub's /metrics, for _per_batch
TARGET = "≥ 10,000/s per worker and ≥ 0.5x raw"
MEASURES = (
    ("gate", "received by the gate"),
    ("view", "gate → identity → view (books), patterns running"),
    ("settled", "gate → identity → view → patterns"),
)


def _stage_figures(
    label: str, result: dict[str, list[float]], raw: list[float], events: int
) -> list[Figure]:
    """The gate, view and end-to-end rates of one hub, each beside the raw loop."""
    figures = []
    workers = 1 if label == "1 worker" else 2
    for stage, what in MEASURES:
        value = median(result[stage])
        end_to_end = stage == "settled"
        figures.append(
            Figure(
                "pipeline",
                f"{label}: {what}",
                value,
                "events/s",
                RAW,
                median(raw),
                target=TARGET if end_to_end else "",
                met=value >= 10_000 * workers and value >= 0.5 * median(raw)
                if end_to_end
                else None,
                note=_note(label, events, result["held"][0]),
                runs=result[stage],
                baseline_runs=raw,
            )
        )
    return figures


def _peer_figures(
    hub: list[float], peer: list[float], raw: list[float], events: int, per_batch: str
) -> list[Figure]:
    """The hub's whole chain beside the peer (issue 15's ratio), and the peer beside raw."""
    ratio = median(hub) / median(peer)
    return [
        Figure(
            "pipeline",
            "1 worker: gate → identity → view → patterns, beside the peer",
            median(hub),
            "events/s",
            PEER,
            median(peer),
            target="≥ 1.0x the peer",
            met=ratio >= 1.0,
            note=f"the peer reads the first {events:,} records of the same partner topics from "
            "the beginning, with fresh state, timed from its first record; the hub's batches "
            f"over the whole run, mean records / mean delivery: {per_batch}",
            runs=hub,
            baseline_runs=peer,
        ),
        Figure(
            "pipeline",
            PEER,
            median(peer),
            "events/s",
            RAW,
            median(raw),
            note="what a well-kept stateful Python stream processor does with the same records",
            runs=peer,
            baseline_runs=raw,
        ),
    ]


def _cost_figure(paired: dict[str, dict[str, list[float]]], events: int) -> Figure:
    """What the patterns stages cost: end to end with them beside the same batches without."""
    on, off = paired["on"]["settled"], paired["off"]["settled"]
    return _beside_off(
        paired,
        "settled",
        "1 worker: gate → identity → view → patterns (the patterns stages' cost)",
        "events/s",
        note=f"patterns on and off: two hubs side by side, {events:,}-event batches taken "
        "in turn; both clocks stop when the last stage's marks cover its inputs; on/off "
        f"batch by batch: {', '.join(f'{a / b:.2f}x' for a, b in zip(on, off, strict=True))}",
    )


def _cpu_figure(paired: dict[str, dict[str, list[float]]]) -> Figure:
    """The worker's CPU per event with the patterns stages, beside the same batches without:
    what caps one worker (its stages share one Python process), steadier than a rate on a
    shared machine."""
    return _beside_off(
        paired,
        "cpu_us",
        "1 worker: worker CPU per event, gate → identity → view → patterns",
        "µs",
        note="user + system CPU of the worker process from a batch's first send until its "
        "last stage has absorbed it, over the events placed in views; it includes reading "
        "the books every 0.2 s; 1,000,000 µs over this figure is the most one worker can take "
        "in a second",
        higher_is_better=False,
    )


def _beside_off(
    paired: dict[str, dict[str, list[float]]],
    key: str,
    measure: str,
    unit: str,
    note: str,
    higher_is_better: bool = True,
) -> Figure:
    """``key`` of the hub with the patterns stages beside the same batches without them."""
    on, off = paired["on"][key], paired["off"][key]
    return Figure(
        "pipeline",
        measure,
        median(on),
        unit,
        "same batches, same run, patterns off (gate → identity → view)",
        median(off),
        higher_is_better=higher_is_better,
        note=note,
        runs=on,
        baseline_runs=off,
    )


def _note(label: str, events: int, held: float) -> str:
    note = f"{events:,} events per batch over {len(PARTNERS)} partner topics"
    if held:
        note += (
            f"; {label}: {held:.0f} events held or dead-lettered though every consent was loaded"
        )
    return note


@dataclass
class Load:
    """What every hub of the scenario is given: the consents, then the same event batches."""

    consents: list[Record]
    batches: list[list[Record]]
    partners: list[str]


def _identity_figure(alone: list[float], chain: list[float]) -> Figure:
    """Identity's own ceiling (``tests.bench.identity_alone``) over the chain per worker."""
    return Figure(
        "pipeline",
        "identity stage alone, fed pre-built batches (its pure process)",
        median(alone),
        "events/s",
        "1 worker: gate → identity → view → patterns",
        median(chain),
        target="≥ 5x the chain per worker",
        met=median(alone) >= 5 * median(chain),
        note="the same events, in the gate's batch records; in-memory tables, no Kafka",
        runs=alone,
        baseline_runs=chain,
    )


def _chain_figure(chains: list[Chain], peer: list[float]) -> Figure:
    """The stages' own work (``tests.bench.chain_alone``) beside the peer: the most any
    transport between the stages could give the chain."""
    rates = [chain.rate for chain in chains]
    middle = sorted(chains, key=lambda chain: chain.rate)[len(chains) // 2]
    return Figure(
        "pipeline",
        "the chain's stages alone, fed each other's records (their pure processes)",
        median(rates),
        "events/s",
        PEER,
        median(peer),
        note="every stage a worker runs, in-memory tables, no Kafka, no Faust, only process "
        f"timed; µs an event by stage (median run): {_costs(middle)}",
        runs=rates,
        baseline_runs=peer,
    )


def _costs(chain: Chain) -> str:
    return ", ".join(f"{name} {us:.0f}" for name, us in chain.per_event_us().items())


def _load(settings: Settings, events: int, repeats: int) -> Load:
    """Encode once (schema ids are fingerprints, the same under any prefix)."""
    prepare(settings)
    place = Place(seed=11, people=events, consent_rate=1.0)
    consents, _ = encode(settings, [place.consent(person) for person in place.people], [])
    batches = [encode(settings, [], place.events(events))[1] for _ in range(repeats)]
    partners = sorted(set().union(*map(partners_of, batches)))
    return Load(consents, batches, partners)


def _chain(settings: Settings, patterns: bool) -> list[tuple[str, tuple[str, ...]]]:
    """The stages a batch must have passed, in order, with their input topics."""
    internal = Internal(settings.app_id)
    chain: list[tuple[str, tuple[str, ...]]] = [("view", (internal.view, internal.transfer))]
    if patterns:
        chain += [("patterns-people", (internal.patterns,))]
        chain += [("patterns", (internal.pattern_deltas,))]
    return chain


def _paired(
    bench: Bench, on: Settings, off: Settings, load: Load
) -> tuple[dict[str, dict[str, list[float]]], str]:
    """One worker with the patterns stages and one without, running side by side, given
    the same batches in turn (so a change in the machine's load falls on both); and the
    batches of the one with the patterns, per stage (``_per_batch``)."""
    prepare(off)
    for settings in (on, off):
        produce(settings, load.consents)
    bench.progress(f"  pipeline-1: {len(load.consents)} consents loaded; starting 2 hubs")
    rates = {side: _rates() for side in ("on", "off")}
    # One profile per run: the worker with the patterns (its figures are then slowed).
    extra: dict[str, Any] = {"metrics_token": SCRAPE_TOKEN}
    if bench.profile:
        extra["bench_profile"] = bench.profile_path("pipeline-1")
    with (
        bench.workers(on, **extra) as with_patterns,
        bench.workers(off, patterns_enabled="false") as without,
    ):
        for settings in (on, off):
            wait_for_consents(settings, len(load.consents))
        hubs = (("on", on, with_patterns, True), ("off", off, without, False))
        for n, batch in enumerate(load.batches, start=1):
            for side, settings, started, patterns in hubs:
                timing = _time_batch(settings, started, load.partners, batch, patterns)
                _take(rates[side], timing, len(batch))
                line = timing.line(len(batch))
                bench.progress(f"  pipeline-1 patterns {side}, batch {n}: {line}")
        per_batch = _per_batch(with_patterns[0])
    bench.progress(f"  pipeline-1 patterns on, per batch (records / delivery): {per_batch}")
    return rates, per_batch


def _per_batch(worker: WorkerProcess) -> str:
    """Each stage's mean records per batch and mean delivery time, from the worker's own
    histograms (``placehub_stage_batch_records``, ``placehub_stage_delivery_seconds``)."""
    scraped = worker.get("/metrics", token=SCRAPE_TOKEN)
    scraped.raise_for_status()
    samples = {
        (sample.name, sample.labels.get("stage")): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    parts = []
    for stage in ("gate", "identity", "view", "alerts", "patterns-people", "patterns"):
        batches = samples.get(("placehub_stage_batch_records_count", stage), 0)
        if batches:
            records = samples["placehub_stage_batch_records_sum", stage] / batches
            delivery = samples["placehub_stage_delivery_seconds_sum", stage] / batches
            parts.append(f"{stage} {records:,.0f} / {delivery * 1000:,.0f} ms")
    return ", ".join(parts)


def _baselines(bench: Bench, settings: Settings, events: int) -> dict[str, list[float]]:
    """The raw loops and bare Faust agents over the first hub's partner topics."""
    base = {"raw": [raw_consume_rate(settings, events) for _ in range(bench.repeats)]}
    base["peer"] = [
        quix_fold_rate(settings, events, bench.root / "peer", bench.progress)
        for _ in range(bench.repeats)
    ]
    floors = {mode: _faust_floor(bench, settings, events, mode) for mode in FLOORS}
    confluent = raw_forward_rate(settings, events)
    bench.progress(
        f"  raw aiokafka loop: {', '.join(f'{r:,.0f}/s' for r in base['raw'])}; "
        f"the peer: {', '.join(f'{r:,.0f}/s' for r in base['peer'])}; "
        + ", ".join(f"Faust {mode} {rate:,.0f}/s" for mode, rate in floors.items())
        + f", confluent-kafka one hop {confluent:,.0f}/s"
    )
    for mode, what in FLOORS.items():
        base[f"bare Faust agent, 1 worker: {what}"] = [floors[mode]]
    base["raw confluent-kafka loop: consume + decode + produce to one topic"] = [confluent]
    return base


def _throughput(
    bench: Bench, settings: Settings, name: str, workers: int, load: Load
) -> dict[str, list[float]]:
    """The batches through ``workers`` workers of one hub with the patterns stages."""
    prepare(settings)
    produce(settings, load.consents)
    bench.progress(f"  {name}: {len(load.consents)} consents loaded; starting {workers} workers")
    rates = _rates()
    with bench.workers(settings, count=workers) as started:
        wait_for_consents(settings, len(load.consents))
        for n, batch in enumerate(load.batches, start=1):
            timing = _time_batch(settings, started, load.partners, batch, patterns=True)
            _take(rates, timing, len(batch))
            bench.progress(f"  {name} batch {n}: {timing.line(len(batch))}")
    return rates


def _rates() -> dict[str, list[float]]:
    return {"gate": [], "view": [], "settled": [], "held": [0], "cpu_us": []}


def _take(rates: dict[str, list[float]], timing: BatchTiming, events: int) -> None:
    rates["gate"].append(events / timing.gate_s)
    rates["view"].append(timing.placed / timing.view_s)
    rates["settled"].append(timing.placed / timing.settled_s)
    rates["held"] = [timing.held]
    rates["cpu_us"].append(timing.cpu_us)


@dataclass
class BatchTiming:
    """How long one batch took to pass the gate, to be placed in views, and to be absorbed
    by the last stage of the chain (the patterns stage, or the view without it)."""

    gate_s: float
    view_s: float
    settled_s: float
    placed: int  # of this batch's events, in a view (or recognised as duplicates)
    held: int  # held in quarantine or dead-lettered (all consents were loaded: should be 0)
    read_ms: float  # median time to read the books once: the measuring's own cost
    cpu_s: float  # the workers' CPU time (user + system) from the first send to settled

    @property
    def cpu_us(self) -> float:
        """The workers' CPU per event placed, in microseconds."""
        return self.cpu_s / max(self.placed, 1) * 1e6

    def line(self, events: int) -> str:
        """The progress line of one batch."""
        return (
            f"gate {events / self.gate_s:,.0f}/s, view {self.placed / self.view_s:,.0f}/s, "
            f"whole chain {self.placed / self.settled_s:,.0f}/s ({self.settled_s:.2f} s), "
            f"held or dead-lettered {self.held}; books read in {self.read_ms:.0f} ms; "
            f"worker CPU {self.cpu_us:,.0f} µs an event"
        )


def _cpu_s(workers: list[WorkerProcess]) -> float:
    """The workers' CPU time so far, user and system (their children's too)."""
    total = 0.0
    for worker in workers:
        assert worker.process is not None
        times = psutil.Process(worker.process.pid).cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _time_batch(
    settings: Settings,
    workers: list[WorkerProcess],
    partners: list[str],
    batch: list[Record],
    patterns: bool,
) -> BatchTiming:
    """Time until the gate has received all of ``batch``, until none is in flight, and
    until every stage of the chain has absorbed its inputs (``tests.bench.marks``).

    Events the gate quarantined or dead-lettered settle too (they are not lost, but with
    every consent loaded there should be none): their number is reported, and only the
    events placed in views count towards the end-to-end rates.
    """
    marks = MarksReader(settings)
    chain = _chain(settings, patterns)
    try:
        before = books(workers[0], partners)
        marks.catch_up()  # the changelog so far, off the clock
        cpu = _cpu_s(workers)
        started = time.perf_counter()
        produce(settings, batch)
        gate_s = view_s = 0.0
        placed = held = 0
        grown: dict[str, int] = {}
        behind: tuple[str, int] | None = None
        deadline = 60 + len(batch) / 100  # even 100 events/s finishes in time
        reads: list[float] = []
        while True:
            now = time.perf_counter() - started
            if not view_s:
                asked = time.perf_counter()
                counts = books(workers[0], partners)
                reads.append((time.perf_counter() - asked) * 1000)
                grown = {name: counts.get(name, 0) - before.get(name, 0) for name in counts}
                if not gate_s and grown["received"] >= len(batch):
                    gate_s = now
                if gate_s and counts["in_flight"] == 0:
                    view_s = now
                    placed = placed_in_views(counts) - placed_in_views(before)
                    held = grown["held_in_quarantine"] + grown["dead_lettered"]
            behind = marks.behind(chain) if view_s else None
            if view_s and behind is None:
                settled_s = time.perf_counter() - started
                cpu_s = _cpu_s(workers) - cpu
                return BatchTiming(gate_s, view_s, settled_s, placed, held, median(reads), cpu_s)
            if now > deadline:
                waiting = f"{behind} records behind" if view_s else f"books grew by {grown}"
                raise TimeoutError(f"pipeline did not settle {len(batch)} events: {waiting}")
            assert_alive(workers)
            time.sleep(POLL_S)
    finally:
        marks.close()


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
    ensure_topic(settings, sink, partitions=settings.partitions)  # nothing is auto-created
    consumer = Consumer(
        {
            **confluent_options(settings),
            "group.id": f"{settings.app_id}-raw-forward",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({**confluent_producer_options(settings), "linger.ms": 5})
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
        **aiokafka_options(settings),
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
