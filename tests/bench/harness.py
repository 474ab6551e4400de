"""Shared pieces of the benchmarks: figures, isolated hubs, worker processes, preloading.

Every scenario gets its own topic prefix, Faust app id, web port and state directory on the
project's broker, so it never sees another scenario's records and can be deleted after.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from connectors import ConsentDraft, EventDraft, Publisher
from connectors.simulate import PARTNERS, Place, recent_start
from hub._admin import ensure_topic
from hub.config import Settings
from hub.kafka_clients import confluent_producer_options, kafka_python_options
from hub.models import (
    ConsentRecord,
    PartnerEvent,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, free_port, worker_env

__all__ = [
    "ADMIN",
    "POLL_S",
    "Bench",
    "Figure",
    "Record",
    "assert_alive",
    "books",
    "crash_of",
    "encode",
    "median",
    "one_event_each",
    "partners_of",
    "percentiles",
    "placed_in_views",
    "prepare",
    "produce",
    "topic_size",
    "wait_for_consents",
    "wait_for_views",
    "wait_until",
]

ADMIN = {"Authorization": "Bearer demo-admin"}

# (topic name without the deployment prefix, key, value): bytes exactly as the SDK sends them.
Record = tuple[str, bytes, bytes]


@dataclass
class Figure:
    """One measured figure beside the baseline it is compared with (ratio = value / baseline)."""

    scenario: str
    measure: str
    value: float
    unit: str
    baseline: str
    baseline_value: float | None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "n": len(ordered)}


POLL_S = 0.2  # the books are read off every table, so they are not asked more often


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class Bench:
    """One benchmark run: the broker's settings, the run's id and where its files go."""

    base: Settings
    quick: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    progress: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    profile: bool = False  # run the pipeline's workers under pyinstrument
    scale_people: int | None = None  # also load the RocksDB store to this many people
    # Extra PLACEHUB_* values for every bench worker, e.g. {"bench_app_options": '{...}'}
    # to try a Faust setting (see tests.bench.worker).
    worker_overrides: dict[str, str] = field(default_factory=dict)
    incidents: list[str] = field(default_factory=list)  # worker restarts etc., reported

    def profile_path(self, name: str) -> str:
        """Where a profiled worker of ``name`` writes its report (``.txt`` and ``.html``)."""
        return str(self.root / f"profile-{name}")

    @property
    def root(self) -> Path:
        return self.base.state_dir / "bench" / self.run_id

    @property
    def repeats(self) -> int:
        return 2 if self.quick else 3

    def hub(self, scenario: str) -> Settings:
        """Settings of a private hub for ``scenario``: own prefix, app id, port, state."""
        name = f"b{self.run_id}-{scenario}"
        return self.base.model_copy(
            update={
                "topic_prefix": f"{name}.",
                "app_id": f"placehub-{name}",
                "web_port": free_port(),
                "state_dir": self.root / scenario,
            }
        )

    @contextlib.contextmanager
    def workers(
        self, settings: Settings, count: int = 1, **overrides: Any
    ) -> Iterator[list[WorkerProcess]]:
        """``count`` bench workers of ``settings``' hub, ready; stopped on exit."""
        started: list[WorkerProcess] = []
        try:
            for n in range(count):
                own = settings.model_copy(update={"web_port": free_port()}) if n else settings
                process = WorkerProcess(
                    own,
                    self.root / f"{settings.app_id}-worker-{n}.log",
                    env=worker_env(own, {**self.worker_overrides, **overrides}),
                    command=[sys.executable, "-m", "tests.bench.worker"],
                )
                self.root.mkdir(parents=True, exist_ok=True)
                started.append(process)
                process.start(timeout_s=180)
            for process in started:  # the first answers again once the group has settled
                wait_until(lambda p=process: _healthy(p), 120, "workers to settle")  # type: ignore[misc]
            time.sleep(1)
            if any(crash_of(process) for process in started):
                # Seen at start-up: Faust's changelog topics missing from its first metadata,
                # then PartitionsMismatch crashes an agent while /v1/health still says ok.
                # Restart once (the topics exist by then) and say so in the report.
                self.incidents.append(f"{settings.app_id}: {crash_of(started[0]) or 'crash'}")
                for process in started:
                    process.stop()
                    process.start(timeout_s=180)
                for process in started:
                    wait_until(lambda p=process: _healthy(p), 120, "workers to settle")  # type: ignore[misc]
            yield started
        finally:
            for process in started:
                process.stop()

    def delete(self, settings: Settings) -> None:
        """Delete every topic and the consumer group of ``settings``' hub."""
        admin = KafkaAdminClient(**kafka_python_options(settings))
        try:
            doomed = [
                t
                for t in admin.list_topics()
                if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")
            ]
            with contextlib.suppress(Exception):
                admin.delete_topics(doomed)
            with contextlib.suppress(Exception):
                admin.delete_groups([settings.app_id])
        finally:
            admin.close()


def crash_of(process: WorkerProcess) -> str | None:
    """The first agent crash in a worker's log (the worker keeps running after one), or None."""
    if not process.log_path.exists():
        return None
    for line in process.log_path.read_text(errors="replace").splitlines():
        if "Crashed reason=" in line:
            return line.split("Crashed reason=", 1)[1][:200]
    return None


def assert_alive(workers: Iterable[WorkerProcess]) -> None:
    """RuntimeError naming the crash if an agent of any of ``workers`` has crashed."""
    for process in workers:
        crash = crash_of(process)
        if crash:
            raise RuntimeError(f"a hub agent crashed (see {process.log_path}): {crash}")


def _healthy(process: WorkerProcess) -> bool:
    try:
        return requests.get(f"{process.url}/v1/health", timeout=2).ok
    except requests.RequestException:
        return False


def books(worker: WorkerProcess, partners: Iterable[str]) -> dict[str, int]:
    """The hub's books summed over ``partners`` (``GET /v1/partners/status``).

    One read adds up every worker's share of every partner's books, read off the state
    that holds each record (view entries, held items, fates), so any worker may be asked.
    """
    reply = requests.get(f"{worker.url}/v1/partners/status", headers=ADMIN, timeout=30)
    reply.raise_for_status()
    statuses = reply.json()["partners"]
    totals: dict[str, int] = {}
    for partner in partners:
        for name, value in statuses[partner].items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return totals


def placed_in_views(counts: dict[str, int]) -> int:
    """Records that reached a person view (``in_view``) or were recognised as re-sent."""
    return counts.get("in_view", 0) + counts.get("duplicate", 0)


def wait_for_views(
    workers: Sequence[WorkerProcess],
    partners: Iterable[str],
    placed: int,
    timeout_s: float,
    poll_s: float = POLL_S,
) -> dict[str, int]:
    """Poll the books until ``placed`` records are in views and none is in flight."""
    partners = sorted(set(partners))
    counts: dict[str, int] = {}

    def done() -> bool:
        nonlocal counts
        assert_alive(workers)
        counts = books(workers[0], partners)
        return placed_in_views(counts) >= placed and counts.get("in_flight", 0) == 0

    wait_until(done, timeout_s, f"{placed:,} records in views", poll_s=poll_s)
    return counts


def partners_of(records: Iterable[Record]) -> set[str]:
    """The partners whose topics ``records`` go to."""
    topics = Topics("")
    return {p for topic, _, _ in records if (p := topics.partner_of(topic)) is not None}


def one_event_each(place: Place, start: datetime | None = None) -> Iterator[tuple[str, EventDraft]]:
    """One event for every person of ``place``, from one of the partners that serve them.

    ``Place.events`` picks people at random; for views of a known size each person needs one.
    """
    start = start or recent_start()
    for person in place.people:
        serving = person.partners()
        partner = PARTNERS[serving[person.index % len(serving)]]
        kind = partner.kinds[person.index % len(partner.kinds)]
        moment = start + timedelta(minutes=person.index % 10_000)
        yield partner.id, place.draft(person, partner.id, partner.family, kind, moment)


def encode(
    settings: Settings,
    consents: Iterable[ConsentDraft],
    events: Iterable[tuple[str, EventDraft]],
) -> tuple[list[Record], list[Record]]:
    """(consent records, event records) as the SDK would send them, without sending them.

    The Publisher's own steps (validate, pseudonymise) and the hub's one serialiser, so the
    bytes are exactly the SDK's; schema ids are fingerprints, the same under any prefix.
    """
    topics = Topics("")
    publishers = {p.id: Publisher(p.id, p.source_system, settings) for p in PARTNERS.values()}
    registry = SchemaRegistry(settings)
    serde = Serde(registry)
    try:
        consent_records = []
        for draft in consents:
            record = publishers["council-housing"].to_consent(draft)
            value = serde.encode(record, f"{settings.topic_prefix}{topics.consent}-value")
            consent_records.append((topics.consent, record.consent_id.encode(), value))
        event_records = []
        for partner, event_draft in events:
            event = publishers[partner].to_event(event_draft)
            topic = topics.partner(partner)
            value = serde.encode(event, f"{settings.topic_prefix}{topic}-value")
            event_records.append((topic, event.subject.tokens[0].encode(), value))
        return consent_records, event_records
    finally:
        registry.close()
        for publisher in publishers.values():
            publisher.close()


def prepare(settings: Settings) -> None:
    """Create the hub's input topics and register the schemas its inputs are written with."""
    topics = Topics(settings.topic_prefix)
    registry = SchemaRegistry(settings)
    serde = Serde(registry)
    try:
        ensure_topic(settings, topics.consent, partitions=settings.partitions, compact=True)
        serde.schema_for(ConsentRecord.avro_schema, f"{topics.consent}-value")
        for partner in PARTNERS:
            ensure_topic(settings, topics.partner(partner), partitions=settings.partitions)
            serde.schema_for(PartnerEvent.avro_schema, f"{topics.partner(partner)}-value")
    finally:
        registry.close()


def produce(settings: Settings, records: Sequence[Record]) -> float:
    """Send ``records`` under ``settings``' prefix with confluent-kafka; seconds until acked."""
    producer = Producer(
        {
            **confluent_producer_options(settings),
            "linger.ms": 5,
            # Kafka's default (Java, kafka-python) partitioner: the hub relies on keyed
            # topics being partitioned by it (librdkafka's own default hashes differently).
            "partitioner": "murmur2_random",
        }
    )
    prefix = settings.topic_prefix
    started = time.perf_counter()
    for topic, key, value in records:
        while True:
            try:
                producer.produce(prefix + topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise TimeoutError(f"{remaining} records were not acknowledged within 60s")
    return time.perf_counter() - started


def wait_for_consents(settings: Settings, count: int, timeout_s: float = 300) -> None:
    """Wait until the running hub has taken in ``count`` consents (its table's changelog)."""
    changelog = f"{settings.app_id}-consents-changelog"
    wait_until(
        lambda: topic_size(settings, changelog) >= count,
        timeout_s,
        "the consents to be absorbed",
        poll_s=0.5,
    )


def topic_size(settings: Settings, topic: str) -> int:
    """How many records ``topic`` holds (sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(**kafka_python_options(settings))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return int(sum(ends.values()))
    finally:
        consumer.close()
