"""The walking skeleton, end to end through the real broker: SDK → gate → view → API."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer

from connectors import ConsentDraft, EventDraft, Publisher
from connectors.pseudonymise import token
from hub.batch import partition_for
from hub.models import (
    BasisKind,
    DeadLetter,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.helpers import (
    Record,
    WorkerProcess,
    produce_raw,
    read_topic,
    wait_for_records,
)

NHS = "943 476 5919"  # a valid-format synthetic NHS number, planted to be searched for
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # well within retention


def consent(consent_id: str = "c-1") -> ConsentDraft:
    return ConsentDraft(
        consent_id=consent_id,
        identifiers={"nhs": NHS, "council": "HSG-0042"},
        purposes=["early-help"],
        sharing_partners=["council-housing", "city-health", "northfield-school"],
    )


def housing_event(consent_id: str = "c-1") -> EventDraft:
    return EventDraft(
        source_ref="TEN-0042",  # the record's own reference, not an identifier
        identifiers={"nhs": NHS, "council": "HSG-0042"},
        basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help"),
        payload=HousingEvent(kind=HousingKind.ARREARS),
        occurred_at=WHEN,
        area_code="E05000001",
    )


def health_event() -> EventDraft:
    return EventDraft(
        source_ref="RX1-778",
        identifiers={"nhs": NHS},
        basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id="c-1", purpose="early-help"),
        payload=HealthEvent(kind=HealthKind.AE_ATTENDANCE),
        occurred_at=WHEN,
    )


def person_path(worker: WorkerProcess) -> str:
    nhs_token = token("nhs", NHS, worker.settings.place_key_bytes())
    return f"/v1/people/{person_id_for(nhs_token)}"


def publish_joined_up_person(worker: WorkerProcess) -> None:
    with Publisher("council-housing", "northgate", worker.settings) as housing:
        housing.publish_consent(consent())
        housing.publish(housing_event())
    with Publisher("city-health", "emis", worker.settings) as health:
        health.publish(health_event())


def test_two_partners_one_person_joined_up_view(worker: WorkerProcess) -> None:
    publish_joined_up_person(worker)
    path = person_path(worker)

    reply = worker.wait_for(
        path, lambda r: r.ok and r.json()["event_count"] == 2, token="demo-practitioner-housing"
    )

    view = reply.json()
    assert view["event_count"] == 2
    assert set(view["partners"]) == {"council-housing", "city-health"}
    assert view["needs"] == {"housing": ["arrears"], "health": ["ae_attendance"]}
    # A practitioner sees only their own partner's local record reference.
    assert view["partners"]["council-housing"]["source_refs"] == ["TEN-0042"]
    assert "source_refs" not in view["partners"]["city-health"]
    # The school holds nothing about this person: not involved, so not found (break glass).
    assert worker.get(path, token="demo-practitioner-school").status_code == 404


def test_reads_are_authenticated_role_checked_and_audited(worker: WorkerProcess) -> None:
    publish_joined_up_person(worker)
    path = person_path(worker)
    worker.wait_for(path, lambda r: r.ok, token="demo-practitioner-housing")

    assert worker.get(path, token=None).status_code == 401
    assert worker.get(path, token="not-a-token").status_code == 401
    assert worker.get(path, token="demo-steward").status_code == 403
    assert worker.get(path, token="demo-admin").status_code == 403
    assert worker.get("/v1/people/p-nobody", token="demo-practitioner-housing").status_code == 404

    serde = Serde(SchemaRegistry(worker.settings))

    def reads(records: list[Record]) -> set[str]:
        decoded = (serde.decode_record(value, "AuditRecord") for _, value, _ in records)
        return {f"{r['role']} {r['outcome']}" for r in decoded}

    # The practitioner's read(s) while waiting, the steward's and admin's denials, the 404.
    expected = {"practitioner ok", "steward denied", "admin denied", "practitioner not-found"}
    audit = wait_for_records(
        worker.settings,
        Topics(worker.settings.topic_prefix).audit,
        3,
        until=lambda records: expected <= reads(records),
        expecting=f"reads audited as {sorted(expected)}",
    )
    assert all(value is not None and value[0] == 0 for _, value, _ in audit)
    assert reads(audit) <= {*expected, "practitioner not-found"}  # 401s are not audited


def test_event_without_consent_is_quarantined_not_viewed(worker: WorkerProcess) -> None:
    with Publisher("council-housing", "northgate", worker.settings) as housing:
        receipt = housing.publish(housing_event(consent_id="c-never-given"))

    topics = Topics(worker.settings.topic_prefix)
    held = wait_for_records(worker.settings, topics.quarantine, 1)

    assert len(held) == 1
    key, _, headers = held[0]
    assert key == b"c-never-given"
    assert b"consent c-never-given is not known" in headers["placehub-reason"]
    assert worker.get(person_path(worker), token="demo-practitioner-housing").status_code == 404
    assert read_topic(worker.settings, topics.events) == []
    assert receipt.event_id


def test_quarantined_event_is_released_when_its_consent_arrives(worker: WorkerProcess) -> None:
    with Publisher("council-housing", "northgate", worker.settings) as housing:
        housing.publish(housing_event(consent_id="c-late"))
        wait_for_records(worker.settings, Topics(worker.settings.topic_prefix).quarantine, 1)
        housing.publish_consent(consent("c-late"))

    reply = worker.wait_for(person_path(worker), lambda r: r.ok, token="demo-practitioner-housing")

    assert reply.status_code == 200
    assert reply.json()["event_count"] == 1


def test_garbage_lands_in_the_dlq_with_reason_and_original_bytes(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    serde = Serde(SchemaRegistry(settings))
    with Publisher("council-housing", "northgate", settings) as housing:
        good = serde.encode(
            housing.to_event(housing_event()), f"{topics.partner('council-housing')}-value"
        )
    bad_inputs = {
        b"not avro at all": "not the Confluent magic byte",
        b"\x00\x00": "shorter than the 5-byte Confluent header",
        b"\x00" + struct.pack(">I", 12345) + b"\x02": "schema id 12345 is not registered",
        good[:-7]: "truncated",
        good + b"\xff\xff": "trailing bytes",
    }
    for value in bad_inputs:
        produce_raw(settings, topics.partner("council-housing"), value)

    letters = wait_for_records(settings, topics.dlq, len(bad_inputs))

    decoded = [serde.decode(value, DeadLetter) for _, value, _ in letters]
    by_original = {letter.original: letter for letter in decoded}
    assert set(by_original) == set(bad_inputs)
    for original, expected in bad_inputs.items():
        letter = by_original[original]
        assert expected in letter.reason
        assert letter.source_topic == topics.partner("council-housing")


def test_event_on_another_partners_topic_is_dead_lettered(worker: WorkerProcess) -> None:
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    with Publisher("council-housing", "northgate", settings) as housing:
        event = housing.to_event(housing_event())
        forged = Serde(SchemaRegistry(settings)).encode(
            event, f"{topics.partner('city-health')}-value"
        )
    produce_raw(settings, topics.partner("city-health"), forged)

    letters = wait_for_records(settings, topics.dlq, 1)

    assert len(letters) == 1
    assert b"arrived on the topic of city-health" in letters[0][1]


def test_worker_restart_restores_the_view_from_its_changelog(worker: WorkerProcess) -> None:
    publish_joined_up_person(worker)
    path = person_path(worker)
    before = worker.wait_for(
        path, lambda r: r.ok and r.json()["event_count"] == 2, token="demo-practitioner-housing"
    )
    before = before.json()

    worker.stop()
    worker.start()

    after = worker.wait_for(path, lambda r: r.ok, token="demo-practitioner-housing").json()
    assert after == before
    # Restored from the changelog, not rebuilt: the new process folded nothing.
    metrics = worker.get("/metrics").text
    assert "placehub_view_updates_total 0.0" in metrics


def test_no_raw_identifier_reaches_any_topic(worker: WorkerProcess) -> None:
    publish_joined_up_person(worker)
    worker.wait_for(
        person_path(worker),
        lambda r: r.ok and r.json()["event_count"] == 2,
        token="demo-practitioner-housing",
    )
    settings = worker.settings
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    ours = [
        t
        for t in consumer.topics()
        if t.startswith(settings.topic_prefix) or t.startswith(settings.app_id)
    ]
    consumer.close()
    planted = [NHS.encode(), NHS.replace(" ", "").encode()]

    scanned = 0
    for topic in ours:
        for key, value, headers in read_topic(settings, topic):
            scanned += 1
            blob = (key or b"") + (value or b"") + b"".join(headers.values())
            for raw in planted:
                assert raw not in blob, f"raw NHS number found in {topic}"
    assert scanned >= 6  # consent, 2 events, hub.events, changelogs: the scan saw real data
    assert any("changelog" in t for t in ours)


def test_a_consent_on_the_wrong_partition_is_dead_lettered_with_the_fix(
    worker: WorkerProcess,
) -> None:
    """Consents must meet the events they release: keyed like Kafka's default partitioner."""
    settings = worker.settings
    topics = Topics(settings.topic_prefix)
    with Publisher("council-housing", "northgate", settings) as housing:
        record = housing.to_consent(consent("c-elsewhere"))
        value = Serde(SchemaRegistry(settings)).encode(record, f"{topics.consent}-value")
        right = partition_for(b"c-elsewhere", settings.partitions)
        wrong = (right + 1) % settings.partitions
        produce_raw(settings, topics.consent, value, key=b"c-elsewhere", partition=wrong)
        housing.publish(housing_event(consent_id="c-elsewhere"))

    letters = wait_for_records(settings, topics.dlq, 1)
    letter = Serde(SchemaRegistry(settings)).decode(letters[0][1], DeadLetter)
    assert letter.source_topic == topics.consent and letter.source_partition == wrong
    assert f"belongs on partition {right}" in letter.reason and "murmur2" in letter.reason
    assert letter.original == value
    assert (
        worker.get(person_path(worker), token="demo-practitioner-housing").status_code == 404
    )  # stays held


def test_fausts_own_table_and_router_pages_are_off(worker: WorkerProcess) -> None:
    """They answered without a token with raw consents, the token → person map, held
    events and the workers' URLs; the hub's API is the only way in."""
    assert worker.get("/v1/partners/status").status_code == 200  # the API still answers
    for path in ("/table/consents/", "/table/identity-people/", "/table/held/", "/router/"):
        assert worker.get(path, token=None).status_code == 404, path
        assert worker.get(path).status_code == 404, path
