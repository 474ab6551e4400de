"""The stage runtime against the real broker: failed deliveries, hostile records, retention
and copies of held events — every record ends in one named fate, and nothing is lost."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from connectors import Publisher
from connectors.events import EventReader
from connectors.pseudonymise import token
from hub.config import Settings
from hub.models import (
    BasisKind,
    DeadLetter,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    PartnerEvent,
    Subject,
)
from hub.registry import SchemaRegistry
from hub.schema_files import load_schema
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, produce_raw, read_topic
from tests.integration.test_stream_core import (
    HOUSING,
    NHS,
    PARTNERS,
    Place,
    _statuses,
    assert_matches_reference,
    at_rest,
    consent_draft,
    draft,
    eventually,
    settled,
    status,
    wait_until,
)

BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default max.message.bytes


def set_max_message_bytes(settings: Settings, topic: str, limit: int) -> None:
    """Make the broker refuse records over ``limit`` bytes on ``topic`` (fault injection)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)}
        )
        admin.alter_configs([resource])
    finally:
        admin.close()


def health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    reply = worker.get("/v1/health")  # an admin sees which stage stalled
    return reply.status_code, reply.json()


def test_a_failed_write_is_never_committed_past_and_the_place_ends_exact(
    make_worker: WorkerFactory,
) -> None:
    """The views' changelog refuses every write while a place loads: the view stage stalls
    (health says so) instead of acking, and a worker stopped while stalled does not commit
    the batch it could not deliver; once the broker takes writes again the load completes,
    and after a kill -9 the views still equal the reference."""
    worker = make_worker()
    changelog = f"{worker.settings.app_id}-views-changelog"
    place = Place(worker.settings, people=60, events=600, seed=3)
    set_max_message_bytes(worker.settings, changelog, 100)  # every view record is larger
    place.publish()
    received = sum(counts["received"] for counts in place.expected_counts().values())
    wait_until(
        lambda: sum(status(worker, p)["received"] for p in PARTNERS) == received,
        timeout_s=120,
        describe=lambda: _statuses(worker),
    )
    wait_until(
        lambda: health(worker)[1].get("stalled_stages", {}).get("view") is not None,
        timeout_s=60,
        describe=lambda: health(worker),
    )
    assert health(worker)[0] == 503
    worker.stop()  # a clean stop cancels the stalled batch; Faust then acks what it holds
    set_max_message_bytes(worker.settings, changelog, BROKER_MAX_MESSAGE_BYTES)
    worker.start()
    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))
    assert health(worker)[0] == 200

    worker.stop(sig=9)  # what is in memory must also be in the changelog
    worker.start()
    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))
    eventually(assert_matches_reference, worker, place)


def _publish_one(settings: Settings, consent: bool = True) -> bytes:
    """Publish one good housing event (and its consent); its framed bytes, as on the topic."""
    with Publisher("council-housing", "northgate", settings) as housing:
        if consent:
            housing.publish_consents([consent_draft("c-1", {"nhs": NHS})])
        housing.publish(draft({"nhs": NHS}, HOUSING))
    records = read_topic(settings, Topics(settings.topic_prefix).partner("council-housing"))
    (_, value, _) = records[-1]
    assert value is not None
    return value


def _out_of_range_timestamp(settings: Settings, framed: bytes) -> bytes:
    """``framed`` with ``occurred_at`` set far past any date a timestamp-millis can hold."""
    schema = load_schema("PartnerEvent")
    plain = _without_logical_types(schema)
    record = fastavro.schemaless_reader(io.BytesIO(framed[5:]), fastavro.parse_schema(plain), None)
    assert isinstance(record, dict)
    record["occurred_at"] = 2**62
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(plain), record)
    return framed[:5] + body.getvalue()


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


def test_hostile_records_all_reach_the_dlq_and_the_worker_stays_healthy(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    housing = topics.partner("council-housing")
    good = _publish_one(settings)
    huge = 1_048_400
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=1_100_000
    )
    try:
        for value in (
            _out_of_range_timestamp(settings, good),
            good[:-10],  # truncated Avro
            b"\x00\xff\xff\xff\xffgarbage",
            bytes(huge),  # nearly the broker's largest record: zeroes are not an event
        ):
            producer.send(housing, key=b"k", value=value).get(timeout=30)
    finally:
        producer.close()
    produce_raw(settings, f"{settings.app_id}-identity", b"\x07corrupt", partition=0)
    produce_raw(settings, f"{settings.app_id}-view", b"\x07corrupt", partition=0)

    def books_settled() -> bool:
        books = status(worker, "council-housing")
        return books["received"] == 5 and books["in_flight"] == 0

    wait_until(books_settled, timeout_s=60, describe=lambda: status(worker, "council-housing"))
    books = status(worker, "council-housing")
    assert (books["in_view"], books["dead_lettered"], books["balanced"]) == (1, 4, True), books
    serde = Serde(SchemaRegistry(settings))
    letters: list[DeadLetter] = []

    def every_stage_dead_lettered() -> None:
        # The corrupt view record is not a partner's, so the books settling says nothing
        # about it: the view stage may letter it a batch later.
        letters[:] = [serde.decode(v, DeadLetter) for _, v, _ in read_topic(settings, topics.dlq)]
        assert sorted(letter.stage or "" for letter in letters) == sorted(
            ["gate"] * 4 + ["identity", "view"]
        )

    eventually(every_stage_dead_lettered)
    (big,) = [letter for letter in letters if letter.original_bytes == huge]
    assert big.original_truncated and len(big.original) < huge
    assert any("DecodeError" in letter.reason for letter in letters if letter.stage == "gate")
    assert health(worker)[0] == 200


def test_a_backfill_past_retention_is_expired_and_a_copy_of_a_held_event_is_a_duplicate(
    worker: WorkerProcess,
) -> None:
    settings = worker.settings
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(
        days=settings.consent_retention_days + 30
    )
    held_id = str(uuid.uuid4())
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consents([consent_draft("c-1", {"nhs": NHS})])
        backfill = draft({"nhs": NHS}, HOUSING)
        housing.publish(backfill.model_copy(update={"occurred_at": old}))
        waiting = draft({"nhs": NHS}, HOUSING, consent_id="c-unknown", event_id=held_id)
        housing.publish(waiting)
        housing.publish(waiting)  # the partner sends the held event again

    def books_settled() -> bool:
        books = status(worker, "council-housing")
        return books["received"] == 3 and books["in_flight"] == 0

    wait_until(books_settled, timeout_s=60, describe=lambda: status(worker, "council-housing"))
    books = status(worker, "council-housing")
    fates = (books["expired"], books["held_in_quarantine"], books["duplicate"], books["in_view"])
    assert fates == (1, 1, 1, 0), books
    assert books["balanced"] is True


def _hostile_events(
    settings: Settings, tokens_of: list[list[str]], consent_id: str | None
) -> list[tuple[bytes, bytes]]:
    """Housing events (key, framed value) with the tokens given, encoded as a partner would,
    under ``consent_id`` or (None) the test agreement, which binds no person: a consent
    admits only identifiers its subject was given with."""
    serde = Serde(SchemaRegistry(settings))
    subject = f"{Topics(settings.topic_prefix).partner('council-housing')}-value"
    now = datetime.now(UTC).replace(microsecond=0)
    records = []
    for n, tokens in enumerate(tokens_of):
        event = PartnerEvent(
            event_id=str(uuid.uuid4()),
            partner_id="council-housing",
            source_system="northgate",
            source_ref=f"HSG-{n}",
            event_type="housing.arrears",
            occurred_at=now - timedelta(days=30, minutes=n),
            recorded_at=now,
            subject=Subject(tokens=tokens),
            basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help")
            if consent_id
            else LawfulBasis(
                kind=BasisKind.AGREEMENT, agreement_id=TEST_AGREEMENT_ID, purpose="early-help"
            ),
            payload=HousingEvent(kind=HousingKind.ARREARS),
        )
        records.append((tokens[0].encode(), serde.encode(event, subject)))
    return records


def _produce_all(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()


def test_state_that_would_outgrow_a_record_is_refused_or_dropped_with_a_fate(
    make_worker: WorkerFactory,
) -> None:
    """One person's view, one consent's holds and one identity row are driven past what a
    Kafka record holds: no stage crashes, the overflow gets a fate, and after a kill -9 every
    acknowledged event is still accounted for."""
    worker = make_worker()
    settings = worker.settings
    key = settings.place_key_bytes()
    many = [token("council", f"HSG-{n}", key) for n in range(16)]  # one person, 16 tokens
    nhs = token("nhs", NHS, key)
    growing = [
        [token("council", "GROW-0", key)]
        + [token("council", f"GROW-{n}-{m}", key) for m in range(15)]
        for n in range(300)
    ]
    records = (
        _hostile_events(settings, [[nhs, *many[1:]]] * 1000, None)  # one huge view
        + _hostile_events(settings, growing, None)  # one identity row that keeps growing
        + _hostile_events(settings, [[nhs]] * 2000, "c-unknown")  # holds for one basis
    )
    _produce_all(settings, Topics(settings.topic_prefix).partner("council-housing"), records)

    def books_settled() -> bool:
        books = status(worker, "council-housing")
        return books["received"] == len(records) and books["in_flight"] == 0

    wait_until(books_settled, timeout_s=240, describe=lambda: status(worker, "council-housing"))
    assert health(worker)[0] == 200
    before = status(worker, "council-housing")
    assert before["dropped"] > 0  # the oldest entries of the full view
    assert before["dead_lettered"] > 0  # the identity row's refusals and the full hold
    assert 0 < before["held_in_quarantine"] < 2000
    worker.stop(sig=9)
    worker.start()
    wait_until(books_settled, timeout_s=240, describe=lambda: status(worker, "council-housing"))
    after = status(worker, "council-housing")
    assert after == before and after["balanced"] is True


def _log_table(log: str, title: str) -> dict[tuple[str, int], int]:
    """The last table Faust logged under ``title``: (topic, partition) → offset."""
    lines = log[log.rindex(title) :].splitlines()[3:]
    table: dict[tuple[str, int], int] = {}
    topic = ""
    for line in lines:
        if not line.startswith("|"):
            break
        name, partition, offset = (cell.strip() for cell in line.strip("|").split("|"))
        topic = topic if name == "〃" else name
        table[topic, int(partition)] = int(offset)
    return table


def test_a_rocksdb_worker_restarted_after_a_load_reads_only_the_changelog_tail(
    make_worker: WorkerFactory,
) -> None:
    """Measured from Faust's own recovery log: the offsets it starts reading each changelog
    at against the changelog's highwater. The store records the offset of every write the
    runtime delivers, so a restart re-reads (almost) nothing."""
    worker = make_worker(store="rocksdb://", watchdog_interval_s=1)
    place = Place(worker.settings, people=40, events=400, seed=9)
    place.publish()
    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))
    # At rest, not just with the books settled: a batch a stage was still writing when
    # killed is re-read by design, and that is not what this measures.
    wait_until(lambda: at_rest(worker), timeout_s=60)
    worker.stop(sig=9)
    worker.start()
    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))
    log = worker.log_path.read_text()
    highwaters = _log_table(log, "Highwater - Active")
    starts = _log_table(log, "Reading Starts At - Active")
    in_changelogs = sum(h + 1 for h in highwaters.values())
    to_read = sum(h - starts.get(tp, -1) for tp, h in highwaters.items())
    assert in_changelogs > 200, highwaters
    assert to_read <= in_changelogs // 20, (to_read, in_changelogs)


def test_after_kill_9_mid_load_an_event_reader_sees_each_admitted_event_once(
    make_worker: WorkerFactory,
) -> None:
    """hub.events is at least once (re-processed records are re-sent); the SDK's reader
    de-duplicates by event id, the documented contract. The restarted worker is healthy
    within 15 s (static group membership)."""
    worker = make_worker()
    place = Place(worker.settings, people=80, events=2000, seed=21)
    published = place.publish_in_background()
    wait_until(
        lambda: sum(status(worker, p)["in_view"] for p in PARTNERS) >= 400,
        timeout_s=120,
        interval_s=0.05,
    )
    worker.stop(sig=9)
    restarted = time.monotonic()
    worker.start()
    assert time.monotonic() - restarted < 15, "the restarted worker took 15 s or more"
    published()
    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))

    admitted = {e for ids in place.reference().values() for e in ids}
    read: list[str] = []
    with EventReader(worker.settings, group_id=f"{worker.settings.app_id}-reader") as reader:
        deadline = time.monotonic() + 60
        while len(read) < len(admitted) and time.monotonic() < deadline:
            read += [item.event.event_id for item in reader.poll(timeout_ms=500)]
        read += [item.event.event_id for item in reader.poll(timeout_ms=2000)]  # nothing more
        copies = reader.seen.repeats
    assert sorted(read) == sorted(admitted), (len(read), len(admitted))
    raw = read_topic(worker.settings, Topics(worker.settings.topic_prefix).events)
    assert len(raw) == len(admitted) + copies  # what the reader dropped were copies


def test_the_sweep_expires_an_entry_when_retention_passes_without_a_new_event(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker(consent_retention_days=1, maintenance_interval_s=1)
    settings = worker.settings
    almost = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1) + timedelta(seconds=8)
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consents([consent_draft("c-1", {"nhs": NHS})])
        housing.publish(draft({"nhs": NHS}, HOUSING).model_copy(update={"occurred_at": almost}))

    def placed(fate: str) -> bool:
        books = status(worker, "council-housing")
        return books["received"] == 1 and books[fate] == 1 and books["in_flight"] == 0

    wait_until(lambda: placed("in_view"), timeout_s=30, interval_s=0.1)
    wait_until(
        lambda: placed("expired"), timeout_s=60, describe=lambda: status(worker, "council-housing")
    )
    books = status(worker, "council-housing")
    assert (books["in_view"], books["expired"], books["balanced"]) == (0, 1, True)
