"""The series the operators' alerts read (``deploy/prometheus/rules.yml``): partner
freshness, dead letters by stage and consumer lag by stage; and that a scrape's text
passes ``promtool check metrics`` (Prometheus naming conventions)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from hub.metrics import Metrics
from hub.runtime.commits import Commits
from hub.runtime.watchdog import Watchdog, lag_by_stage
from hub.stages.effects import Effects, Record

GATE_0, GATE_1 = TP("partner.a.events", 0), TP("partner.a.events", 1)
VIEW_0 = TP("hub.view-in", 0)
READERS = {"partner.a.events": "gate", "hub.view-in": "view", "hub.alerts-in": "alerts"}


class Marks:
    """The marks table as ``Commits`` reads it (no stage has marked anything)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}


class Consumer:
    """Faust's consumer as the watchdog reads it."""

    def __init__(self) -> None:
        self._committed_offset = {GATE_0: 40, GATE_1: 10, VIEW_0: 7}
        self.ends = {GATE_0: 100, GATE_1: 10, VIEW_0: 9}

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        raise AssertionError("nothing here is stuck at a first look")


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_the_gate_counting_a_partners_record_sets_its_freshness_to_now() -> None:
    metrics = Metrics()
    metrics.declare_partners(["council-housing", "city-health"])
    started = _value(
        metrics, "placehub_partner_last_event_timestamp_seconds", partner="city-health"
    )
    assert started is not None and abs(started - time.time()) < 60  # silent since the start
    before = time.time()
    metrics.count("placehub_gate_outcomes", ("council-housing", "admit"))
    taken = _value(
        metrics, "placehub_partner_last_event_timestamp_seconds", partner="council-housing"
    )
    assert taken is not None and before <= taken <= time.time()
    metrics.count("placehub_records_settled", ("city-health", "in_view"))  # not the gate's
    assert (
        _value(metrics, "placehub_partner_last_event_timestamp_seconds", partner="city-health")
        == started
    )


def test_a_dead_letter_is_counted_for_its_stage() -> None:
    effects = Effects()
    record = Record("partner.a.events", 0, 5, None, b"not avro")
    effects.dead_letter(record, "gate", "gate could not decode the record", datetime.now(UTC))
    assert effects.metrics[("placehub_dead_letters", ("gate",))] == 1
    metrics = Metrics()
    metrics.declare_stages(["gate", "view"])
    for (name, labels), n in effects.metrics.items():
        metrics.count(name, labels, n)
    assert _value(metrics, "placehub_dead_letters_total", stage="gate") == 1
    assert _value(metrics, "placehub_dead_letters_total", stage="view") == 0  # declared


def test_lag_is_the_records_past_each_partitions_start_summed_per_stage() -> None:
    commits = Commits(Marks(), READERS)
    commits.log_start[VIEW_0] = 8  # retention deleted offset 7: it starts at 8
    consumer = Consumer()
    lag = lag_by_stage(commits, consumer.ends, consumer._committed_offset)
    # gate: 60 + 0; view: 9 - 8; alerts: no partition here, so 0 (not its old figure).
    assert lag == {"gate": 60, "view": 1, "alerts": 0}


def test_each_watchdog_look_sets_the_lag_gauge_even_while_a_stage_is_stalled() -> None:
    metrics = Metrics()
    consumer = Consumer()
    dog = Watchdog(
        consumer, Commits(Marks(), READERS), lambda: True, metrics.count, lag=metrics.set_lag
    )
    asyncio.run(dog.look())
    assert _value(metrics, "placehub_consumer_lag_records", stage="gate") == 60
    consumer.ends[GATE_0] = 130
    asyncio.run(dog.look())
    assert _value(metrics, "placehub_consumer_lag_records", stage="gate") == 90
    assert _value(metrics, "placehub_consumer_lag_records", stage="alerts") == 0


def test_a_scrape_passes_promtool_check_metrics() -> None:
    """Every series the hub registers, with samples, in the text a scrape gets."""
    metrics = Metrics()
    metrics.declare_partners(["council-housing"])
    metrics.declare_rules(["repeat-ae-attendance"])
    metrics.declare_webhooks(["council-housing"])
    metrics.declare_stages(["gate", "view"])
    metrics.set_lag({"gate": 3})
    for name, counter in metrics._by_name.items():
        labels = ("x",) * len(counter._labelnames)
        metrics.count(name, labels)
    metrics.webhook_seconds.labels("council-housing").observe(0.2)
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=metrics.exposition(),
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = metrics.exposition().decode()
    for series in (
        "placehub_partner_last_event_timestamp_seconds",
        "placehub_dead_letters_total",
        "placehub_consumer_lag_records",
    ):
        assert f"\n{series}{{" in text, series
