"""What a scrape of /metrics shows: counts about single people only in steps of 5."""

from __future__ import annotations

from hub.metrics import Metrics


def _lines(metrics: Metrics) -> list[str]:
    return metrics.exposition().decode().splitlines()


def test_person_level_counts_are_rounded_down_to_a_multiple_of_5() -> None:
    metrics = Metrics()
    metrics.declare_partners(["council-housing", "city-health"])
    metrics.count("placehub_records_settled", ("council-housing", "erased"), 3)
    metrics.count("placehub_records_settled", ("city-health", "erased"), 7)
    metrics.count("placehub_records_settled", ("city-health", "dead_lettered"), 3)
    metrics.person_reads.labels("denied").inc()
    lines = _lines(metrics)
    series = 'placehub_records_settled_total{fate="%s",partner="%s"} %s'
    # One erasure and none look the same; a partner with none shows the series too.
    assert series % ("erased", "council-housing", "0.0") in lines
    assert series % ("erased", "city-health", "5.0") in lines
    assert series % ("expired", "council-housing", "0.0") in lines
    assert series % ("dead_lettered", "city-health", "3.0") in lines  # the partner's data
    assert 'placehub_person_reads_total{outcome="denied"} 0.0' in lines
    assert not [line for line in lines if "_created" in line]  # when a series first moved


def test_the_help_text_states_the_rule() -> None:
    text = Metrics().exposition().decode()
    assert "erased, dropped, expired follow one person's consent or retention" in text
    assert "rounded down to a multiple of 5 (below 5 shows 0)" in text
