"""The benchmarks' pure pieces: ids that carry publish times, percentiles, the table, the CLI,
how an alert on a stream is timed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from connectors import Publisher
from connectors.simulate import PARTNERS, Place
from hub.cli import main
from hub.config import Settings
from hub.models import PartnerEvent
from tests.bench.alerts import alert_latencies, unstreamed
from tests.bench.harness import Figure, one_event_each, partners_of, percentiles
from tests.bench.latency import _saturation
from tests.bench.loadgen import event_id_at, published_at
from tests.bench.run import render_table
from tests.bench.scale import restarted_rss_figure, sizes_for
from tests.integration.sse import SseEvent
from tests.unit.fakes import MemoryRegistry


def test_event_ids_carry_their_publish_time_and_are_valid_event_ids() -> None:
    pattern = PartnerEvent.model_fields["event_id"].metadata[0].pattern
    ns = 1_795_000_000_123_456_789
    ids = {event_id_at(ns, seq) for seq in (0, 1, 2**40)}
    assert len(ids) == 3
    for event_id in ids:
        assert re.fullmatch(pattern, event_id), event_id
        assert published_at(event_id) == ns
    assert published_at("0b7e6a52-2f1c-4c1e-9a6e-3f8d2b1c4d5e") is None  # an SDK uuid4


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "n": 100}
    assert percentiles([7.0])["p99"] == 7.0
    assert percentiles([])["n"] == 0


def test_table_shows_ratio_target_and_verdict() -> None:
    figures = [
        Figure("ingest", "SDK", 800.0, "events/s", "raw", 1000.0, target="≥ 0.8x", met=True),
        Figure("query", "p99", 12.5, "ms", "trivial", 2.5, higher_is_better=False, note="n=10"),
        Figure("scale", "RSS", 100.0, "MB", "idle", None),
    ]
    table = render_table(figures)
    assert "| ingest | SDK | 800 events/s | raw | 1,000 events/s | 0.80x | ≥ 0.8x ✅ |" in table
    assert "| query | p99 | 12.5 ms | trivial | 2.5 ms | 5.00x |  |" in table
    assert "| scale | RSS | 100.0 MB | idle | - | - |  |" in table
    assert "- query: n=10" in table


def test_bench_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "ingest,typo"]) == 2
    assert "unknown scenario(s) ['typo']" in capsys.readouterr().err


def test_one_event_each_person_from_a_partner_that_serves_them_and_publishable() -> None:
    place = Place(seed=21, people=300)
    items = list(one_event_each(place))
    assert len(items) == len(place.people)
    assert len({partner for partner, _ in items}) > 3  # spread over the place's partners
    registry = MemoryRegistry()
    publishers = {
        p.id: Publisher(p.id, p.source_system, Settings(), registry) for p in PARTNERS.values()
    }
    for person, (partner, draft) in zip(place.people, items, strict=True):
        assert partner in person.partners()
        assert draft.payload.family == PARTNERS[partner].family
        assert draft.basis.agreement_id == PARTNERS[partner].agreement  # else the consent:
        assert draft.basis.agreement_id or draft.basis.consent_id == person.consent_id
        publishers[partner].prepare(draft)  # validates, tokenises and encodes; sends nothing


def test_partners_of_names_the_partner_topics_only() -> None:
    records = [
        ("partner.city-health.events", b"k", b"v"),
        ("partner.council-housing.events", b"k", b"v"),
        ("consent.records", b"k", b"v"),
    ]
    assert partners_of(records) == {"city-health", "council-housing"}


def test_scale_people_adds_a_measured_last_step_to_the_rocksdb_store() -> None:
    assert sizes_for(quick=False, people=1_000_000)["rocksdb://"][-1] == 1_000_000
    assert sizes_for(quick=False, people=1_000_000)["memory://"] == sizes_for(False)["memory://"]
    assert sizes_for(quick=True, people=5_000) == sizes_for(quick=True)  # not above the last


def test_the_scale_scenario_reports_the_rss_after_a_restart_beside_the_rss_as_loaded() -> None:
    result = {
        "steps": {10_000: {"rss_mb": 300.0}, 50_000: {"rss_mb": 700.0}},
        "restart": {"healthy_s": 4.0, "readable_s": 5.0, "rss_mb": 280.0},
        "idle_mb": 108.0,
    }

    figure = restarted_rss_figure("rocksdb://", result)

    assert figure.measure == "worker RSS after a restart, 50,000 people (rocksdb store)"
    assert (figure.value, figure.baseline_value) == (280.0, 108.0)
    assert figure.note == "RSS as loaded: 700 MB"


def _streamed(alert_id: str, raised_at: datetime, at_ns: int, event: str = "alert") -> SseEvent:
    item = {"alert_id": alert_id, "raised_at": raised_at.isoformat()}
    return SseEvent(event, "0.0", json.dumps(item), at_ns)


def test_an_alert_is_timed_from_its_newest_event_to_the_first_stream_that_shows_it() -> None:
    since = 1_795_000_000_000_000_000
    raised_at = datetime(2026, 11, 30, 9, 0, 0, 123_456, tzinfo=UTC)
    key = ("a-1", int(raised_at.timestamp() * 1000))
    newest, older = event_id_at(since + 40_000_000, 2), event_id_at(since + 10_000_000, 1)
    earlier_run = event_id_at(since - 5_000_000_000, 0)  # a rate measured before: not timed
    raised = {key: [older, newest, earlier_run, "0b7e6a52-2f1c-4c1e-9a6e-3f8d2b1c4d5e"]}
    received = [
        _streamed("a-1", raised_at, since + 95_000_000),  # the school's stream, later
        _streamed("a-1", raised_at, since + 90_000_000),  # housing's, first
        _streamed("a-1", raised_at, since + 1, event="erased"),
    ]
    assert alert_latencies(received, raised, since) == [50.0]
    assert alert_latencies(received, {key: [earlier_run]}, since) == []


def test_a_raise_counts_as_streamed_when_it_or_a_later_raise_of_it_was_shown() -> None:
    first = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    escalated = first + timedelta(seconds=2)
    ms = int(first.timestamp() * 1000)
    told = {("a-1", ms), ("a-2", ms), ("a-3", ms + 5_000)}
    shown = [_streamed("a-1", escalated, 1), _streamed("a-3", first, 1)]
    assert unstreamed(told, shown) == {("a-2", ms), ("a-3", ms + 5_000)}


def test_the_saturation_point_is_the_lowest_rate_whose_p99_passed_one_second() -> None:
    between = _saturation({500: (90.0, 50.0), 1_000: (400.0, 52.0), 2_000: (4_000.0, 60.0)})
    assert (between.value, between.baseline_value) == (2_000, 2_000)
    assert "between 1,000/s and 2,000/s" in between.note
    assert "raw hop's did not pass 1 s up to 2,000/s, a lower bound" in between.note
    at_once = _saturation({500: (1_183.0, 52.0), 1_000: (5_316.0, 52.0)})
    assert at_once.value == 500
    assert "passed 1 s already at 500/s, the lowest rate measured" in at_once.note
    never = _saturation({500: (90.0, 50.0), 1_000: (120.0, 1_200.0)})
    assert (never.value, never.baseline_value) == (1_000, 1_000)
    assert "did not pass 1 s up to 1,000/s" in never.note
