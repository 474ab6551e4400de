"""Prometheus metrics: counts by partner and outcome, never anything about a person."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub import accounting

__all__ = ["Metrics"]


class _LedgerCollector(Collector):
    """Exposes the accounting ledger (which survives restarts) at scrape time."""

    def __init__(self, entries: Callable[[], Iterable[accounting.Ledger]]) -> None:
        self._entries = entries

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = list(self._entries())
        partners = sorted({p for entry in entries for p in entry.get("partners", {})})
        family = GaugeMetricFamily(
            "placehub_records",
            "Records per partner by where they are now (the accounting identity's terms).",
            labels=["partner", "bucket"],
        )
        for partner in partners:
            for bucket, value in accounting.partner_status(entries, partner).items():
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
        self.person_reads = Counter(
            "placehub_person_reads",
            "Reads of person views, by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def watch_ledger(self, hub: Any) -> None:
        """Export ``hub``'s accounting ledger as gauges."""
        self.registry.register(_LedgerCollector(lambda: [v for v in hub.ledger.values() if v]))
