"""Latency: publish → visible in a person's view, at fixed rates, vs a raw produce → consume.

Method. A separate process publishes the simulated place's events through the SDK at a fixed
rate (every 10 ms a batch, acknowledged before the next), writing the publish time into
each event id (``loadgen.event_id_at``). The bench process tails the worker's ``views``
table changelog: Faust writes a view's new value there right after storing it, so the
first changelog record holding an event id is the moment that event became visible to
``GET /v1/people/{id}``. Latency = the time the watcher receives that record minus the publish
time (both clocks are this machine's). The watcher waits for every event to appear (or 60 s
after publishing stops) before the next rate. At 1,000/s the hub is measured five times in a
row in a full run and its p99 figure is the worst of them (the target must hold in each);
the saturation point is the lowest measured rate at which p99 passed 1 s, for the hub and
for the raw hop.

Baseline: the same publisher pattern sends same-sized records with a bare kafka-python
producer to a plain topic, and the same watcher consumes them: the floor of one Kafka hop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connectors.simulate import Place
from hub._admin import ensure_topic
from hub.config import PROJECT_ROOT, Settings
from hub.kafka_clients import confluent_options
from tests.bench.harness import (
    Bench,
    Figure,
    encode,
    percentiles,
    prepare,
    produce,
    wait_for_consents,
)
from tests.bench.loadgen import RAW_TOPIC, published_at
from tests.integration.helpers import worker_env

__all__ = ["Watcher", "from_the_end", "run", "view_times"]

PEOPLE = 2_000
DRAIN_S = 60.0
TARGET_RATE, TARGET_RUNS = 1_000, 5  # issue 15: p99 < 100 ms in five full runs in a row
P99_LIMIT_MS = {TARGET_RATE: 100, 2_000: 250}  # issue 15's targets, by rate
SATURATED_MS = 1_000.0  # p99 past this: the hub no longer keeps up with the rate


def run(bench: Bench) -> list[Figure]:
    """p50/p95/p99 at each rate for the hub and for one raw Kafka hop; the 1,000/s rate
    measured ``TARGET_RUNS`` times in a row (its target must hold in every run), and the
    saturation point (``_saturation``)."""
    rates = (500, 1_000) if bench.quick else (500, 1_000, 1_500, 2_000)
    seconds = 5.0 if bench.quick else 10.0
    settings = bench.hub("latency")
    figures: list[Figure] = []
    p99s: dict[int, tuple[float, float]] = {}  # rate -> (hub p99, raw p99)
    try:
        prepare(settings)
        place = Place(seed=3, people=PEOPLE, consent_rate=1.0)
        consents, _ = encode(settings, [place.consent(p) for p in place.people], [])
        produce(settings, consents)
        ensure_topic(settings, settings.topic_prefix + RAW_TOPIC, partitions=settings.partitions)
        with bench.workers(settings):
            wait_for_consents(settings, len(consents))
            for rate in rates:
                runs = TARGET_RUNS if rate == TARGET_RATE and not bench.quick else 1
                hubs, raw = _at_rate(bench, settings, rate, seconds, runs)
                worst = max(hubs, key=lambda h: (h["p99"], h["sent"] - h["seen"]))
                for p in ("p50", "p95", "p99"):
                    figures.append(_figure(rate, p, hubs[0] if p != "p99" else worst, raw, hubs))
                p99s[rate] = (worst["p99"], raw["p99"])
    finally:
        bench.delete(settings)
    figures.append(_saturation(p99s))
    return figures


def _at_rate(
    bench: Bench, settings: Settings, rate: int, seconds: float, runs: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The hub ``runs`` times in a row at ``rate``, then the raw hop once."""
    hubs = []
    for _ in range(runs):
        hubs.append(_measure(settings, rate, seconds, raw=False))
        hub = hubs[-1]
        bench.progress(
            f"  {rate}/s: hub p50 {hub['p50']:.0f} p99 {hub['p99']:.0f} ms "
            f"({hub['seen']}/{hub['sent']} seen, published at {hub['rate']:.0f}/s)"
        )
    raw = _measure(settings, rate, seconds, raw=True)
    bench.progress(f"  {rate}/s: raw p50 {raw['p50']:.0f} p99 {raw['p99']:.0f} ms")
    return hubs, raw


def _figure(
    rate: int, p: str, hub: dict[str, Any], raw: dict[str, Any], runs: list[dict[str, Any]]
) -> Figure:
    """One percentile at one rate; p99 is the worst of the runs at that rate."""
    limit = P99_LIMIT_MS.get(rate) if p == "p99" else None
    target = f"p99 < {limit} ms at {rate:,}/s" if limit else ""
    missing = hub["sent"] - hub["seen"]
    note = f"{hub['rate']:.0f}/s achieved; {hub['seen']}/{hub['sent']} seen"
    if len(runs) > 1 and p == "p99":
        each = ", ".join(f"{r['p99']:.0f}" for r in runs)
        note = f"the worst of {len(runs)} runs in a row (p99 each: {each} ms); " + note
    return Figure(
        "latency",
        f"publish → view {p} at {rate:,}/s",
        hub[p],
        "ms",
        "raw kafka-python → consumer, same rate",
        raw[p],
        higher_is_better=False,
        target=target,
        met=(hub[p] < limit and missing == 0) if limit else None,
        note=note + (f", {missing} not visible within {DRAIN_S:.0f}s" if missing else ""),
        runs=[r[p] for r in runs],
    )


def _saturation(p99s: dict[int, tuple[float, float]]) -> Figure:
    """The lowest measured rate at which p99 passed 1 s, for the hub and for the raw hop
    (the highest rate measured if it never did, and the note says so)."""
    top = max(p99s)
    hub = min((rate for rate, (p99, _) in p99s.items() if p99 > SATURATED_MS), default=None)
    raw = min((rate for rate, (_, p99) in p99s.items() if p99 > SATURATED_MS), default=None)
    below = max((rate for rate in p99s if hub is None or rate < hub), default=None)
    if hub is None:
        note = f"the hub's p99 did not pass 1 s up to {top:,}/s (the highest rate measured)"
    elif below is None:
        note = f"the hub's p99 passed 1 s already at {hub:,}/s, the lowest rate measured"
    else:
        note = f"the hub's p99 passed 1 s between {below:,}/s and {hub:,}/s"
    if raw is None:
        note += f"; the raw hop's did not pass 1 s up to {top:,}/s, a lower bound"
    return Figure(
        "latency",
        "saturation: lowest rate measured where publish → view p99 passes 1 s",
        float(hub or top),
        "events/s",
        "raw kafka-python → consumer, same test",
        float(raw or top),
        note=note + f"; rates measured: {', '.join(f'{r:,}' for r in sorted(p99s))}/s",
    )


def _measure(settings: Settings, rate: int, seconds: float, raw: bool) -> dict[str, Any]:
    topic = settings.topic_prefix + RAW_TOPIC if raw else f"{settings.app_id}-views-changelog"
    watcher = Watcher(settings, topic, _raw_times if raw else view_times)
    command = [sys.executable, "-m", "tests.bench.loadgen", "publish"]
    command += ["--rate", str(rate), "--seconds", str(seconds), "--people", str(PEOPLE)]
    loader = subprocess.Popen(
        [*command, *(["--raw"] if raw else [])],
        env=worker_env(settings),
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        while loader.poll() is None:
            watcher.poll(0.05)
        out, _ = loader.communicate()
        if loader.returncode:
            raise RuntimeError(f"load generator failed with exit code {loader.returncode}")
        sent = json.loads(out)
        deadline = time.monotonic() + DRAIN_S
        while len(watcher.latencies_ms) < sent["sent"] and time.monotonic() < deadline:
            watcher.poll(0.05)
    finally:
        if loader.poll() is None:
            loader.kill()
        watcher.close()
    return {
        **percentiles(watcher.latencies_ms),
        "sent": sent["sent"],
        "seen": len(watcher.latencies_ms),
        "rate": sent["rate"],
    }


def view_times(value: bytes) -> list[tuple[str, int]]:
    view = json.loads(value) if value else None
    return [
        (entry["event_id"], at)
        for entry in (view or {}).get("entries", [])
        if (at := published_at(entry["event_id"])) is not None
    ]


def _raw_times(value: bytes) -> list[tuple[str, int]]:
    if len(value) < 16:  # the warm-up record
        return []
    return [(value[:16].hex(), int.from_bytes(value[:8], "big"))]


def from_the_end(settings: Settings, topic: str, group: str) -> Consumer:
    """A consumer of ``topic`` assigned its partitions' ends as explicit offsets, so nothing
    published after this call can be missed."""
    consumer = Consumer(
        {
            **confluent_options(settings),
            "group.id": f"{settings.app_id}-{group}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = [
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
    ]
    consumer.assign(
        [TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)]
    )
    return consumer


class Watcher:
    """Consumes ``topic`` from its end; one latency per record id, the first time it is seen."""

    def __init__(
        self, settings: Settings, topic: str, times: Callable[[bytes], list[tuple[str, int]]]
    ) -> None:
        self.consumer = from_the_end(settings, topic, "bench-watcher")
        self.times = times
        self.since_ns = time.time_ns()  # views also hold events of earlier rates: skip those
        self.seen: set[str] = set()
        self.latencies_ms: list[float] = []

    def poll(self, timeout_s: float) -> None:
        for message in self.consumer.consume(num_messages=1_000, timeout=timeout_s):
            if message.error() is not None:
                continue
            now = time.time_ns()
            for record_id, at in self.times(message.value() or b""):
                if at >= self.since_ns and record_id not in self.seen:
                    self.seen.add(record_id)
                    self.latencies_ms.append((now - at) / 1e6)

    def close(self) -> None:
        self.consumer.close()
