"""Prometheus metrics: counts by partner and outcome, never anything about a person."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["Metrics"]


class Metrics:
    """The hub's counters, in their own registry so tests can make fresh ones."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "placehub_records_received",
            "Records read from partner topics.",
            ["partner"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "placehub_gate_outcomes",
            "Gate outcomes per partner (admit, quarantine, dead-letter).",
            ["partner", "outcome"],
            registry=self.registry,
        )
        self.released = Counter(
            "placehub_quarantine_released",
            "Quarantined events released once their consent arrived.",
            registry=self.registry,
        )
        self.view_updates = Counter(
            "placehub_view_updates",
            "Events folded into person views (duplicates excluded).",
            registry=self.registry,
        )
        self.person_reads = Counter(
            "placehub_person_reads",
            "Reads of person views, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
