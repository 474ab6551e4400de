"""Prometheus metrics: counts by partner and outcome, never anything about a person.

Every count is a counter the stages increment as they decide (``Effects.metrics``), and
the publish-to-view latency a histogram the view observes (``Effects.observations``), so a
scrape reads counters and never walks the tables. Two gauges serve the operators' alerts
(``deploy/prometheus/rules.yml``): each partner's freshness, set when the gate's outcome
for one of its records is counted, and each stage's consumer lag, set at each watchdog
look (``hub.runtime.watchdog``). Reasons (why a record was dead-lettered or held in
quarantine) are labels only as codes from a fixed list (``hub.stages.reasons``), never the
words with ids in them. Names follow Prometheus conventions (base units, ``_total`` on
counters, ``_seconds``, ``_timestamp_seconds``), checked by ``promtool check metrics``;
``deploy/grafana/placehub.json`` draws them.

Small counts can still say something about one person: a partner's ``erased`` count going
from 0 to 1 says that someone withdrew consent. So the exposition (``Metrics.exposition``)
rounds such series down to a multiple of ``DISCLOSURE_STEP`` (below 5 shows 0), shows
them for every declared partner from the start (a series that appears is news too), and
leaves out ``_created`` timestamps (when a series first moved). The rule for each metric
is in its HELP text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hub.models import FeedbackOutcome
from hub.stages.reasons import BASIS_RESULTS, DEAD_LETTER_REASONS, PERSON_LEVEL_RESULTS

__all__ = ["DISCLOSURE_STEP", "PERSON_LEVEL_FATES", "WEBHOOK_OUTCOMES", "Metrics"]

DISCLOSURE_STEP = 5
# Fates that follow one person's consent or retention, not the partner's data quality.
PERSON_LEVEL_FATES = ("erased", "dropped", "expired")
# How a webhook notification's attempts went (hub.webhook_sender).
WEBHOOK_OUTCOMES = ("delivered", "retried", "dead_lettered")
# Each notification is about one alert, so one person: their series are rounded.
_WEBHOOK_METRICS = ("placehub_webhook_deliveries", "placehub_webhook_attempt_seconds")

_Rule = Callable[[str, Mapping[str, str]], bool]
_ROUNDED = f"rounded down to a multiple of {DISCLOSURE_STEP} (below {DISCLOSURE_STEP} shows 0)"


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
            "books are at GET /v1/partners/status. The fates "
            f"{', '.join(PERSON_LEVEL_FATES)} follow one person's consent or retention, so "
            f"they are {_ROUNDED}; the other fates are exact.",
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
            f"Reads of person views, by outcome; each is one person's, so {_ROUNDED}.",
            ["outcome"],
            registry=self.registry,
        )
        self.joins_refused = Counter(
            "placehub_identity_joins_refused",
            "Joins identity refused because they would give a person two NHS numbers, by "
            "whether they were listed for review or the review list was full.",
            ["outcome"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "placehub_alerts",
            "Alert rule outcomes by rule: new, escalated, suppressed (a repeat within the "
            f"cooldown), erased (its basis went); each is about one person, so {_ROUNDED}.",
            ["rule", "outcome"],
            registry=self.registry,
        )
        self.rewinds = Counter(
            "placehub_partition_rewinds",
            "Stream partitions the watchdog found stuck and read again from their "
            "committed offset (hub.runtime.watchdog).",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "placehub_webhook_deliveries",
            "Webhook notifications per partner and outcome: delivered (a 2xx answer), "
            "retried (an attempt failed and another follows), dead_lettered (the last "
            f"attempt failed; the notification went to hub.dlq); {_ROUNDED}.",
            ["partner", "outcome"],
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "placehub_webhook_attempt_seconds",
            f"How long each webhook attempt took per partner, failed ones too (counts {_ROUNDED}).",
            ["partner"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "placehub_dead_letters",
            "Records sent to hub.dlq, by the stage that could not process them and a reason "
            "code (hub.stages.reasons.DEAD_LETTER_REASONS; the reason in words is in the "
            "dead letter).",
            ["stage", "reason"],
            registry=self.registry,
        )
        self.basis_checks = Counter(
            "placehub_lawful_basis_checks",
            "The gate's lawful-basis check of each partner event it could read, by partner, "
            "basis kind (consent, agreement) and result: live (admitted at once) or the "
            "reason code it was held in quarantine for (hub.stages.reasons.BASIS_RESULTS). "
            "A partner's consent coverage is the share of its consent-based events whose "
            'consent was live on arrival: result="live" over all results of basis="consent". '
            f"The results {', '.join(PERSON_LEVEL_RESULTS)} under a consent follow one "
            f"person's consent, so they are {_ROUNDED}.",
            ["partner", "basis", "result"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "placehub_alert_feedback",
            "Practitioners' verdicts on alerts, by rule and verdict (useful, not_useful, "
            f"already_known, acted); each is about one person's alert, so {_ROUNDED}.",
            ["rule", "verdict"],
            registry=self.registry,
        )
        self.pattern_late = Counter(
            "placehub_pattern_late_events",
            "Events that reached the patterns after their window had closed (event time past "
            "the window's end plus the grace period), so are not in its counts; per "
            f"granularity (an event is late for its week and its month apart); {_ROUNDED}.",
            ["granularity"],
            registry=self.registry,
        )
        for granularity in ("week", "month"):
            self.pattern_late.labels(granularity)
        self.partner_last_event = Gauge(
            "placehub_partner_last_event_timestamp_seconds",
            "Unix time this worker's gate last took a record from the partner's topic (the "
            "worker's start until it first does); the latest over workers is the partner's.",
            ["partner"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "placehub_consumer_lag_records",
            "Records on the broker past where each stage's input partitions on this worker "
            "are committed (high watermark minus committed offset), at the last watchdog look.",
            ["stage"],
            registry=self.registry,
        )
        self.gate_paused = Gauge(
            "placehub_gate_paused",
            "1 while this worker's gate reads no partner events because its consent "
            "partitions are more than consent_backlog_max records behind (hub.runtime.flow).",
            registry=self.registry,
        )
        self.event_latency = Histogram(
            "placehub_event_latency_seconds",
            "Seconds from an event's recorded_at (when the partner's publisher produced it) "
            "to the view stage folding it into a person's view, per partner; the time an "
            "event waited in quarantine for its basis is in it. A publisher clock ahead of "
            "the hub's counts as 0. Duplicates are not observed.",
            ["partner"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
            registry=self.registry,
        )
        self.stage_batch = Histogram(
            "placehub_stage_batch_records",
            "Records in each batch a stage processed (records its marks list as done "
            "already are not counted): small batches mean each pays a whole delivery.",
            ["stage"],
            buckets=(1, 5, 20, 50, 100, 200, 500, 1000, 5000),
            registry=self.registry,
        )
        self.stage_delivery = Histogram(
            "placehub_stage_delivery_seconds",
            "Seconds from a batch's first send to the broker acknowledging its last record "
            "(every phase, each awaited before the next, retries included): the stage "
            "takes no new batch meanwhile.",
            ["stage"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=self.registry,
        )
        self._histograms: dict[str, Histogram] = {
            "placehub_event_latency_seconds": self.event_latency,
            "placehub_stage_batch_records": self.stage_batch,
            "placehub_stage_delivery_seconds": self.stage_delivery,
        }
        self._by_name: dict[str, Counter] = {
            "placehub_dead_letters": self.dead_letters,
            "placehub_lawful_basis_checks": self.basis_checks,
            "placehub_alert_feedback": self.feedback,
            "placehub_pattern_late_events": self.pattern_late,
            "placehub_webhook_deliveries": self.webhook_deliveries,
            "placehub_identity_joins_refused": self.joins_refused,
            "placehub_partition_rewinds": self.rewinds,
            "placehub_alerts": self.alerts,
            "placehub_gate_outcomes": self.outcomes,
            "placehub_quarantine_released": self.released,
            "placehub_view_updates": self.view_updates,
            "placehub_stage_failures": self.stage_failures,
            "placehub_records_settled": self.settled,
        }
        self.public = CollectorRegistry(auto_describe=False)
        self.public.register(_Disclosed(self.registry, _person_level))

    def count(self, name: str, labels: tuple[str, ...], n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (a stage's metric increment) with ``labels``."""
        counter = self._by_name[name]
        (counter.labels(*labels) if labels else counter).inc(n)
        if name == "placehub_gate_outcomes":  # labels: partner, outcome
            self.partner_last_event.labels(labels[0]).set(time.time())

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Observe ``value`` in the histogram ``name`` with ``labels`` (a stage's effect)."""
        self._histograms[name].labels(*labels).observe(value)

    def declare_stages(self, stages: Iterable[str]) -> None:
        """Show every stage's dead letters and lag from the start, at 0 (so an increase
        counts its first dead letter)."""
        for stage in stages:
            for reason in DEAD_LETTER_REASONS:
                self.dead_letters.labels(stage, reason)
            self.consumer_lag.labels(stage)

    def set_gate_paused(self, paused: bool) -> None:
        """Whether this worker's gate waits for its consents, as the watchdog last decided."""
        self.gate_paused.set(int(paused))

    def set_lag(self, by_stage: Mapping[str, int]) -> None:
        """Each stage's consumer lag on this worker, as the watchdog last saw it."""
        for stage, records in by_stage.items():
            self.consumer_lag.labels(stage).set(records)

    def declare_rules(self, rules: Iterable[str]) -> None:
        """Show every rule's series from the start, at 0 (a first alert is news too)."""
        for rule in rules:
            for outcome in ("new", "escalated", "suppressed", "erased"):
                self.alerts.labels(rule, outcome)
            for verdict in FeedbackOutcome:
                self.feedback.labels(rule, verdict.value.lower())

    def declare_partners(self, partners: Iterable[str]) -> None:
        """Show every partner's person-level series from the start, at 0: a series that
        first appears when a partner's first erasure happens would tell of it. Each
        partner's freshness starts at now, so a partner silent since the start shows."""
        started = time.time()
        for partner in partners:
            for fate in PERSON_LEVEL_FATES:
                self.settled.labels(partner, fate)
            self.partner_last_event.labels(partner).set(started)
            self.event_latency.labels(partner)
            for basis, results in BASIS_RESULTS.items():
                for result in results:
                    self.basis_checks.labels(partner, basis, result)
        for outcome in ("ok", "not-found", "denied"):
            self.person_reads.labels(outcome)

    def declare_webhooks(self, partners: Iterable[str]) -> None:
        """Show the webhook series of every partner with a webhook from the start, at 0."""
        for partner in partners:
            for outcome in WEBHOOK_OUTCOMES:
                self.webhook_deliveries.labels(partner, outcome)
            self.webhook_seconds.labels(partner)

    def exposition(self) -> bytes:
        """The Prometheus text a scrape gets: person-level series rounded, no timestamps."""
        return generate_latest(self.public)


def _person_level(metric: str, labels: Mapping[str, str]) -> bool:
    """Whether a series counts events about single people (so is rounded on the way out)."""
    if metric == "placehub_records_settled":
        return labels.get("fate") in PERSON_LEVEL_FATES
    if metric == "placehub_lawful_basis_checks":
        return labels.get("basis") == "consent" and labels.get("result") in PERSON_LEVEL_RESULTS
    return metric in (
        "placehub_person_reads",
        "placehub_alerts",
        "placehub_alert_feedback",
        "placehub_pattern_late_events",
        *_WEBHOOK_METRICS,
    )


class _Disclosed(Collector):
    """The hub's registry as a scrape may see it (disclosure control on the way out)."""

    def __init__(self, source: CollectorRegistry, rounded: _Rule) -> None:
        self.source, self.rounded = source, rounded

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            shown = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                value = sample.value
                # A histogram's sum is seconds, not a count: it stays as it is.
                counts = not sample.name.endswith("_sum")
                if counts and self.rounded(family.name, sample.labels):
                    value = float(int(value) // DISCLOSURE_STEP * DISCLOSURE_STEP)
                shown.add_sample(sample.name, sample.labels, value, sample.timestamp)
            yield shown
