"""Erasure is final on disk: after a withdrawal, once retention and compaction have run, no
topic the hub derives holds the person, read raw, record by record, against the real
broker (the withdrawal test in ``test_stream_core`` checks what the tables restore to)."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from connectors import Publisher
from hub.config import Settings
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import read_topic
from tests.integration.test_stream_core import (
    NHS,
    REF,
    consent_draft,
    shared_by_two_partners,
    status,
    wait_until,
)

SECONDS = 1 / 3600  # settings in hours


def derived_topics(settings: Settings) -> list[str]:
    """Every topic of this hub but its inputs (partner topics, partners' links) and its
    audit trails (the audit topic, break-glass reads), which keep who was erased."""
    names = Topics(settings.topic_prefix)
    kept = {names.audit}
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        topics = consumer.topics()
    finally:
        consumer.close()
    return sorted(
        t
        for t in topics
        if (settings.topic_prefix in t or t.startswith(settings.app_id))
        and t not in kept
        and names.partner_of(t) is None
        and names.links_partner_of(t) is None
        and "break-glass" not in t
    )


def traces_left(settings: Settings, traces: list[bytes]) -> dict[str, int]:
    """Per topic, how many records still hold any of ``traces`` (key, value or header)."""
    found: dict[str, int] = {}
    for topic in derived_topics(settings):
        for key, value, headers in read_topic(settings, topic, timeout_s=30):
            blob = b"".join([key or b"", value or b"", *headers.values()])
            if any(trace in blob for trace in traces):
                found[topic] = found.get(topic, 0) + 1
    return found


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_after_a_withdrawal_retention_and_compaction_no_derived_topic_holds_the_person(
    make_worker: WorkerFactory, store: str
) -> None:
    """Events, quarantine and internal hops keep records for seconds here, compacted topics
    roll and drop tombstones as quickly, and the maintenance tick (each second) appends the
    roll records a quiet partition needs before compaction can apply an erasure
    (``hub.runtime.rolls``). Without those, the consent topic and the changelogs the
    erasure's tombstones landed in keep the person's tokens for good. A worker restarted
    afterwards recovers its tables through those roll tombstones."""
    worker = make_worker(
        events_retention_hours=15 * SECONDS,
        hop_retention_hours=15 * SECONDS,
        compacted_segment_hours=2 * SECONDS,
        maintenance_interval_s=1,
        store=store,
    )
    s = worker.settings
    person, nhs, council = shared_by_two_partners(worker)
    traces = [person.encode(), nhs.encode(), council.encode(), b"REF-1"]
    assert traces_left(s, traces)  # the person is on the derived topics now

    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS, "council": REF}, withdrawn=True))
    wait_until(lambda: status(worker, "council-housing")["erased"] == 1)
    left: dict[str, int] = {}

    def nothing_left() -> bool:
        left.clear()
        left.update(traces_left(s, traces))
        return not left

    wait_until(nothing_left, timeout_s=240, interval_s=5, describe=lambda: left)
    # The tables recover from changelogs full of roll tombstones.
    worker.stop()
    worker.start()
    assert worker.get("/v1/health").status_code == 200
    books = status(worker, "council-housing")
    assert books["erased"] == 1 and books["balanced"], books
