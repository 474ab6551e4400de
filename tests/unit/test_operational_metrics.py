"""The series the operators' alerts and dashboard read (``deploy/prometheus/rules.yml``,
``deploy/grafana/placehub.json``): partner freshness, dead letters by stage and reason,
consumer lag by stage, lawful-basis checks (quarantine reasons, consent coverage),
publish-to-view latency and alert feedback; and that a scrape's text passes ``promtool
check metrics`` (Prometheus naming conventions)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.types import TP

from hub import feedback
from hub.metrics import Metrics
from hub.models import FeedbackOutcome
from hub.runtime.commits import Commits
from hub.runtime.watchdog import Watchdog, lag_by_stage
from hub.stages.basis import Consents
from hub.stages.effects import Effects, Record, State, attempt
from hub.stages.gate import GateStage
from hub.stages.reasons import DEAD_LETTER_REASONS
from hub.stages.view import ViewStage
from hub.topics import Topics
from hub.users import Role, User
from tests.unit import factories
from tests.unit.test_stages import (
    CTX,
    NOW,
    event_item,
    framed,
    record,
    run,
    view_record,
    written,
)

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
    reason = "DecodeError: first byte is 0x6e, not the Confluent magic byte 0x00"
    effects.dead_letter(record, "gate", reason, datetime.now(UTC))
    assert effects.metrics[("placehub_dead_letters", ("gate", "undecodable"))] == 1
    metrics = Metrics()
    metrics.declare_stages(["gate", "view"])
    for (name, labels), n in effects.metrics.items():
        metrics.count(name, labels, n)
    gate = {"stage": "gate", "reason": "undecodable"}
    assert _value(metrics, "placehub_dead_letters_total", **gate) == 1
    view = {"stage": "view", "reason": "undecodable"}
    assert _value(metrics, "placehub_dead_letters_total", **view) == 0  # declared


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
        consumer,
        Commits(Marks(), READERS),
        lambda: set(READERS.values()),
        metrics.count,
        lag=metrics.set_lag,
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
    metrics.observe("placehub_event_latency_seconds", ("council-housing",), 1.5)
    metrics.observe("placehub_stage_batch_records", ("gate",), 200)
    metrics.observe("placehub_stage_delivery_seconds", ("gate",), 0.02)
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


# -- reasons, consent coverage, latency and feedback --------------------------------------

HOUSING = CTX.topics.partner("council-housing")


def test_the_gate_counts_each_readable_events_basis_check_by_kind_and_result() -> None:
    consents = {"c-1": factories.consent().model_dump(mode="json")}
    records = [
        record(HOUSING, framed(factories.event()), 0),
        record(HOUSING, framed(factories.event(consent_id="c-9")), 1),  # consent not yet here
        record(HOUSING, b"garbage", 2),  # not readable: a dead letter, not a check
    ]
    effects, _ = run(GateStage(CTX, Consents()), records, consents=consents)
    checks = {k: n for k, n in effects.metrics.items() if k[0] == "placehub_lawful_basis_checks"}
    assert checks == {
        ("placehub_lawful_basis_checks", ("council-housing", "consent", "live")): 1,
        ("placehub_lawful_basis_checks", ("council-housing", "consent", "unknown")): 1,
    }
    assert effects.metrics["placehub_dead_letters", ("gate", "undecodable")] == 1


def test_the_view_observes_publish_to_view_latency_for_new_events_only() -> None:
    published = factories.event().model_copy(update={"recorded_at": NOW - timedelta(seconds=3)})
    ahead = factories.event().model_copy(update={"recorded_at": NOW + timedelta(minutes=5)})
    items = [event_item(published, "s1"), event_item(ahead, "s2"), event_item(published, "s3")]
    effects, state = run(ViewStage(CTX), [view_record(items)])
    assert effects.observations == [
        ("placehub_event_latency_seconds", ("council-housing",), 3.0),
        ("placehub_event_latency_seconds", ("council-housing",), 0.0),  # clock ahead: 0
    ]  # s3, a copy of an event in the view, is a duplicate: not observed
    again, _ = run(ViewStage(CTX), [view_record(items)], views=written(state, "views"))
    assert again.observations == []  # read again after a restart: nothing new


def test_a_record_that_fails_takes_its_observations_with_it() -> None:
    effects = Effects()

    def fail() -> None:
        effects.observe("placehub_event_latency_seconds", "council-housing", value=1.0)
        raise KeyError("x")

    assert attempt("view", State({}), effects, fail) is not None
    assert effects.observations == []


def test_the_latency_histogram_has_buckets_per_partner_from_the_start() -> None:
    metrics = Metrics()
    metrics.declare_partners(["council-housing"])
    bucket = "placehub_event_latency_seconds_bucket"
    assert _value(metrics, bucket, partner="council-housing", le="1.0") == 0
    metrics.observe("placehub_event_latency_seconds", ("council-housing",), 0.7)
    metrics.observe("placehub_event_latency_seconds", ("council-housing",), 40.0)
    assert _value(metrics, bucket, partner="council-housing", le="1.0") == 1
    assert _value(metrics, bucket, partner="council-housing", le="60.0") == 2


def scraped(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in metrics.public.collect()
        for sample in family.samples
    }


def test_consent_results_that_follow_one_persons_consent_are_rounded_the_others_exact() -> None:
    metrics = Metrics()
    metrics.declare_partners(["council-housing"])
    metrics.declare_rules(["repeat-ae-attendance"])
    for result in ("withdrawn", "unknown", "live"):
        metrics.count("placehub_lawful_basis_checks", ("council-housing", "consent", result), 3)
    metrics.count("placehub_alert_feedback", ("repeat-ae-attendance", "useful"), 7)
    shown = scraped(metrics)

    def check(result: str, basis: str = "consent") -> float:
        labels = {"partner": "council-housing", "basis": basis, "result": result}
        return shown["placehub_lawful_basis_checks_total", frozenset(labels.items())]

    assert (check("withdrawn"), check("unknown"), check("live")) == (0, 3, 3)
    assert check("partner", "agreement") == 0  # declared from the start, like every result
    feedback = {"rule": "repeat-ae-attendance", "verdict": "useful"}
    assert shown["placehub_alert_feedback_total", frozenset(feedback.items())] == 5
    acted = {"rule": "repeat-ae-attendance", "verdict": "acted"}
    assert shown["placehub_alert_feedback_total", frozenset(acted.items())] == 0


def test_every_stage_shows_every_dead_letter_reason_from_the_start() -> None:
    metrics = Metrics()
    metrics.declare_stages(["gate", "release"])
    for reason in DEAD_LETTER_REASONS:
        assert _value(metrics, "placehub_dead_letters_total", stage="release", reason=reason) == 0


class Producer:
    """The producer give_feedback sends with: each send's future resolves at once."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_feedback_is_counted_by_its_alerts_rule_and_the_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alert = {"alert_id": "a-1", "rule": "repeat-ae-attendance", "person_id": "p-1"}

    async def told(*args: Any) -> list[dict[str, Any]]:
        return [alert]

    async def audited(*args: Any) -> None:
        return None

    monkeypatch.setattr(feedback, "gather", told)
    monkeypatch.setattr(feedback, "write_audit", audited)
    monkeypatch.setattr(feedback, "producer_of", lambda app: Producer())
    hub = SimpleNamespace(
        metrics=Metrics(),
        topics=Topics(),
        serde=SimpleNamespace(encode=lambda record, subject: b""),
        settings=SimpleNamespace(partitions=1),
        app=None,
    )
    user = User(id="u", role=Role.PRACTITIONER, partner="council-housing", token_sha256="0" * 64)
    body = feedback.FeedbackBody(outcome=FeedbackOutcome.ALREADY_KNOWN)
    asyncio.run(feedback.give_feedback(cast(Any, hub), user, "a-1", body))
    labels = {"rule": "repeat-ae-attendance", "verdict": "already_known"}
    assert _value(hub.metrics, "placehub_alert_feedback_total", **labels) == 1
