"""The ingest benchmark against the real broker, at its quick size: the partner is
onboarded first (the SDK creates no topic and registers no schema since partners are
onboarded by the hub's admin), so every producer's figure comes back. Before that fix the
scenario failed with UnknownPartner and ``make bench`` printed no ingest figures."""

from __future__ import annotations

from hub.config import Settings
from tests.bench import ingest
from tests.bench.harness import Bench


def test_the_ingest_scenario_measures_the_sdk_beside_both_raw_producers(
    broker_settings: Settings,
) -> None:
    lines: list[str] = []
    figures = ingest.run(Bench(broker_settings, quick=True, progress=lines.append))
    assert [(f.measure, f.baseline) for f in figures] == [
        (
            "SDK publish (validate + pseudonymise + encode + produce, acked)",
            "raw kafka-python producer, same bytes",
        ),
        (
            "SDK publish (as above)",
            "raw kafka-python producer, same bytes, the SDK's 256 KiB batches",
        ),
        ("SDK publish (as above)", "raw confluent-kafka producer, same bytes"),
        (
            "SDK publish, one event per call (publish)",
            "raw kafka-python, send + flush + ack per event",
        ),
    ]
    for figure in figures:  # each side published every event of each run, and was timed
        assert len(figure.runs) == len(figure.baseline_runs) == 2
        assert all(rate > 0 for rate in [*figure.runs, *figure.baseline_runs])
    assert "3000 events of" in figures[0].note
