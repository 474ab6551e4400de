"""Prometheus metrics: counts by partner and outcome, never anything about a person."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class _AccountsCollector(Collector):
    """Exposes the partners' books (which survive restarts) at scrape time."""

    def __init__(self, statuses: Callable[[], dict[str, dict[str, int | bool]]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "placehub_records",
            "Records per partner by where they are now, over this worker's partitions.",
            labels=["partner", "bucket"],
        )
        for partner, status in self._statuses().items():  # one pass over the tables
            for bucket, value in status.items():
                family.add_metric([partner, bucket], float(value))
        yield family


class Metrics:
    """The hub's metrics, in their own registry so tests can make fresh ones."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.outcomes = Counter(
            "placehub_gate_outcomes",
            "Gate outcomes per partner since this process started.",
            ["partner", "outcome"],
            registry=self.registry,
        )
        self.released = Counter(
            "placehub_quarantine_released",
            "Quarantined events released once their basis arrived, since start.",
            registry=self.registry,
        )
        self.view_updates = Counter(
            "placehub_view_updates",
            "Events folded into person views by this process (duplicates excluded).",
            registry=self.registry,
        )
        self.stage_failures = Counter(
            "placehub_stage_failures",
            "Records (or items of a batch record) a stage could not process: dead-lettered.",
            ["stage"],
            registry=self.registry,
        )
        self.person_reads = Counter(
            "placehub_person_reads",
            "Reads of person views, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def count(self, name: str, labels: tuple[str, ...], n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a stage's metric increment) with ``labels``."""
        counter = self._by_name[name]
        (counter.labels(*labels) if labels else counter).inc(n)

    @property
    def _by_name(self) -> dict[str, Counter]:
        return {
            "placehub_gate_outcomes": self.outcomes,
            "placehub_quarantine_released": self.released,
            "placehub_view_updates": self.view_updates,
            "placehub_stage_failures": self.stage_failures,
        }

    def watch_accounts(self, statuses: Callable[[], dict[str, dict[str, int | bool]]]) -> None:
        """Export every partner's books (``statuses()``) as gauges at scrape time."""
        self.registry.register(_AccountsCollector(statuses))
