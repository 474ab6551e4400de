"""Prometheus metrics: counts by partner and outcome, never anything about a person.

Every metric is a counter the stages increment as they decide (``Effects.metrics``), so a
scrape reads counters and never walks the tables.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["Metrics"]


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
        self.settled = Counter(
            "placehub_records_settled",
            "Partner records that reached a fate in this process (a record later released "
            "from quarantine, erased or expired counts again at its new fate); the exact "
            "books are at GET /v1/partners/status.",
            ["partner", "fate"],
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
        self._by_name: dict[str, Counter] = {
            "placehub_gate_outcomes": self.outcomes,
            "placehub_quarantine_released": self.released,
            "placehub_view_updates": self.view_updates,
            "placehub_stage_failures": self.stage_failures,
            "placehub_records_settled": self.settled,
        }

    def count(self, name: str, labels: tuple[str, ...], n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a stage's metric increment) with ``labels``."""
        counter = self._by_name[name]
        (counter.labels(*labels) if labels else counter).inc(n)
