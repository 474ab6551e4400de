"""Stream partitions are committed only as far as their stage has done
(``hub.runtime.commits``), against the real broker."""

from __future__ import annotations

import re
import uuid

from kafka import KafkaProducer

from connectors import Publisher
from hub.config import Settings
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, committed, ends, read_topic
from tests.integration.test_stream_core import HOUSING, consent_draft, draft, status, wait_until

NUMBERS = ["943 476 5919", "401 023 2137", "943 476 5870"]


def rewinds(worker: WorkerProcess) -> float:
    metrics = worker.get("/metrics").text
    found = re.search(r"^placehub_partition_rewinds_total (\S+)$", metrics, re.M)
    assert found, "placehub_partition_rewinds_total is not exported"
    return float(found.group(1))


def resend_in_transactions(settings: Settings, topic: str) -> int:
    """Send every record of ``topic`` again, one transaction each (so a marker follows
    each copy); how many."""
    sent = read_topic(settings, topic)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, transactional_id=f"test-{uuid.uuid4()}"
    )
    try:
        producer.init_transactions()
        for key, value, headers in sent:
            producer.begin_transaction()
            producer.send(topic, key=key, value=value, headers=list(headers.items()))
            producer.commit_transaction()
    finally:
        producer.close()
    return len(sent)


def test_offsets_that_hold_no_record_are_committed_past_without_reading_again(
    make_worker: WorkerFactory,
) -> None:
    """Records sent in transactions leave an offset without a record after each (the commit
    marker; compaction leaves the same kind of hole on the consent topic). Commits stop at
    the first until the watchdog finds on the broker that it holds nothing; then every
    partition of the consent topic and of a partner's topic is committed to its end,
    without being read again, and the partner's books balance (the copies are duplicates)."""
    worker = make_worker(watchdog_interval_s=1)
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consents(
            [consent_draft(f"c-{n}", {"nhs": nhs}) for n, nhs in enumerate(NUMBERS)]
        )
        housing.publish_many(
            [draft({"nhs": nhs}, HOUSING, consent_id=f"c-{n}") for n, nhs in enumerate(NUMBERS)]
        )
    for topic in (topics.consent, topics.partner("council-housing")):
        copies = resend_in_transactions(settings, topic)
        end = ends(settings, topic)
        assert sum(end.values()) == 3 * copies  # the originals, each copy and its marker
        wait_until(
            lambda topic=topic, end=end: (
                committed(settings, topic) == {p: e for p, e in end.items() if e}
            ),
            timeout_s=60,
            describe=lambda topic=topic, end=end: f"{committed(settings, topic)}, ends {end}",
        )
    assert rewinds(worker) == 0
    books = status(worker, "council-housing")
    assert books["received"] == 2 * len(NUMBERS) and books["balanced"], books
