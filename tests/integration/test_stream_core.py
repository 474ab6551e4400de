"""The stream core against the real broker: lawful basis, identity, erasure, accounting,
crash recovery, replay and several workers."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from connectors import ConsentDraft, EventDraft, LinkDraft, Publisher
from connectors.events import EventReader
from connectors.pseudonymise import token
from connectors.simulate import synthetic_nhs_number
from hub.config import Settings
from hub.models import (
    BasisKind,
    ConsentStatus,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    PartnerEvent,
    Payload,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import mint, person_id_for
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import (
    WorkerProcess,
    committed,
    ends,
    produce_raw,
    read_topic,
    wait_for_records,
)

NHS, REF, UPN = "943 476 5919", "HSG-0042", "A000000000000"
PARTNERS = ["council-housing", "northfield-school", "city-health"]
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # well within retention


def consent_draft(
    consent_id: str, identifiers: dict[str, str], withdrawn: bool = False
) -> ConsentDraft:
    return ConsentDraft(
        consent_id=consent_id,
        identifiers=identifiers,
        purposes=["early-help"],
        sharing_partners=PARTNERS,
        status=ConsentStatus.WITHDRAWN if withdrawn else ConsentStatus.GIVEN,
    )


def draft(
    identifiers: dict[str, str],
    payload: Payload,
    consent_id: str | None = "c-1",
    agreement_id: str | None = None,
    event_id: str | None = None,
    minutes: int = 0,
) -> EventDraft:
    basis = (
        LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help")
        if agreement_id is None
        else LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose="early-help")
    )
    return EventDraft(
        source_ref="REF-1",
        identifiers=identifiers,
        basis=basis,
        payload=payload,
        occurred_at=WHEN + timedelta(minutes=minutes),
        event_id=event_id,
    )


HOUSING = HousingEvent(kind=HousingKind.ARREARS)
SCHOOL = EducationEvent(kind=EducationKind.SUSPENSION)
HEALTH = HealthEvent(kind=HealthKind.AE_ATTENDANCE)


def tok(settings: Settings, scheme: str, value: str) -> str:
    return token(scheme, value, settings.place_key_bytes())


def publish_link(
    settings: Settings,
    partner: str,
    link_id: str,
    first: tuple[str, str],
    second: tuple[str, str],
    retract: bool = False,
    consent_id: str | None = None,
) -> None:
    """``partner`` asserts (or retracts) through the SDK that two identifiers are one person,
    under consent ``consent_id`` or else the test agreement."""
    basis = (
        LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help")
        if consent_id
        else LawfulBasis(
            kind=BasisKind.AGREEMENT, agreement_id=TEST_AGREEMENT_ID, purpose="early-help"
        )
    )
    draft = LinkDraft(link_id=link_id, identifiers=[first, second], retracted=retract, basis=basis)
    with Publisher(partner, "sim", settings) as publisher:
        publisher.publish_link(draft)


def status(worker: WorkerProcess, partner: str) -> dict[str, Any]:
    reply = worker.get(f"/v1/partners/{partner}/status")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def wait_until(
    predicate: Any, timeout_s: float = 60, interval_s: float = 0.3, describe: Any = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"not reached in time: {describe() if describe else ''}"
        time.sleep(interval_s)


def stored_views(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    """Every person's view as the hub stores it (the views changelog's live values): what
    the pipeline built, whoever may read it (the read rules have tests of their own)."""
    topic = f"{worker.settings.app_id}-views-changelog"
    views = {}
    for key, value in live_values(worker.settings, topic).items():
        entries = json.loads(value)["entries"]
        if key and entries:
            views[key.decode()] = {
                "event_count": len(entries),
                "partners": {entry["partner_id"]: {} for entry in entries},
                "timeline": [{"event_id": e["event_id"]} for e in entries],
            }
    return views


def view(worker: WorkerProcess, person_id: str) -> dict[str, Any] | None:
    """``person_id``'s stored view (``stored_views``), or None."""
    return stored_views(worker).get(person_id)


def test_three_partners_three_identifiers_one_person_and_a_retracted_link_splits(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    nhs, council, upn = tok(s, "nhs", NHS), tok(s, "council", REF), tok(s, "upn", UPN)
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS, "council": REF, "upn": UPN}))
        housing.publish(draft({"council": REF}, HOUSING))
    with Publisher("northfield-school", "sims", s) as school:
        school.publish(draft({"upn": UPN}, SCHOOL))
    with Publisher("city-health", "emis", s) as health:
        health.publish(draft({"nhs": NHS}, HEALTH))
    publish_link(s, "council-housing", "l-1", ("council", REF), ("nhs", NHS), consent_id="c-1")
    publish_link(s, "northfield-school", "l-2", ("upn", UPN), ("nhs", NHS))
    person = person_id_for(nhs)

    wait_until(lambda: (v := view(worker, person)) is not None and v["event_count"] == 3)
    joined = view(worker, person)
    assert joined is not None and set(joined["partners"]) == set(PARTNERS)
    assert view(worker, person_id_for(council)) is None  # merged away

    publish_link(s, "northfield-school", "l-2", ("upn", UPN), ("nhs", NHS), retract=True)

    wait_until(
        lambda: (v := view(worker, person_id_for(upn))) is not None and v["event_count"] == 1
    )
    wait_until(lambda: (v := view(worker, person)) is not None and v["event_count"] == 2)
    after = view(worker, person)
    assert after is not None and set(after["partners"]) == {"council-housing", "city-health"}
    school_only = view(worker, person_id_for(upn))
    assert school_only is not None and set(school_only["partners"]) == {"northfield-school"}

    # hub.events is a contract topic: the merges and the split above travel on the
    # worker's internal view topic, so it holds the three events and nothing else.
    serde = Serde(SchemaRegistry(s))
    published = read_topic(s, Topics(s.topic_prefix).events)
    assert sorted(serde.decode(v, PartnerEvent).partner_id for _, v, _ in published) == sorted(
        PARTNERS
    )


def live_values(settings: Settings, topic: str) -> dict[bytes | None, bytes]:
    """The latest non-deleted value per key: what a compacted topic restores to."""
    latest: dict[bytes | None, bytes | None] = {}
    for key, value, _ in read_topic(settings, topic):
        latest[key] = value
    return {k: v for k, v in latest.items() if v is not None}


def shared_by_two_partners(worker: WorkerProcess) -> tuple[str, str, str]:
    """Housing's consent c-1 for a person (NHS number and council ref), an event from
    housing and one from health, in the person's view; their person id and two tokens."""
    s = worker.settings
    nhs, council = tok(s, "nhs", NHS), tok(s, "council", REF)
    person = person_id_for(nhs)
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS, "council": REF}))
        housing.publish(draft({"nhs": NHS, "council": REF}, HOUSING))
    with Publisher("city-health", "emis", s) as health:
        health.publish(draft({"nhs": NHS}, HEALTH))
    wait_until(lambda: (v := view(worker, person)) is not None and v["event_count"] == 2)
    return person, nhs, council


def test_withdrawal_leaves_nothing_of_the_person(worker: WorkerProcess) -> None:
    s = worker.settings
    person, nhs, council = shared_by_two_partners(worker)

    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS, "council": REF}, withdrawn=True))
        wait_until(lambda: view(worker, person) is None)
        housing.publish(draft({"nhs": NHS}, HOUSING, minutes=5))  # after withdrawal

    topics = Topics(s.topic_prefix)
    held = wait_for_records(s, topics.quarantine, 1)
    assert held[-1][2]["placehub-reason"] == b"consent c-1 has been withdrawn"
    wait_until(lambda: status(worker, "council-housing")["erased"] == 1)
    assert status(worker, "city-health")["erased"] == 1
    # Readers of hub.events learn of the erasure (a tombstone keyed by the person), and the
    # consent's records are tombstoned, so compaction leaves no tokens on the topic.
    erased: list[str] = []
    with EventReader(s, group_id=f"{s.app_id}-erasures", on_erasure=erased.append) as reader:
        wait_until(lambda: bool(reader.poll(timeout_ms=200)) or person in erased)
        wait_until(lambda: reader.poll(timeout_ms=200) == [] and person in erased)
    assert erased == [person]
    assert b"c-1" not in live_values(s, topics.consent)
    assert status(worker, "city-health")["in_view"] == 0
    # Nothing of the person survives in any table (changelogs restore to their live values).
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers)
    changelogs = [t for t in consumer.topics() if t.startswith(s.app_id) and "changelog" in t]
    consumer.close()
    assert len(changelogs) >= 5
    for changelog in changelogs:
        for key, value in live_values(s, changelog).items():
            blob = (key or b"") + value
            for trace in (person.encode(), nhs.encode(), council.encode()):
                assert trace not in blob, f"{changelog} still holds the person"
    audit = Serde(SchemaRegistry(s))
    actions = [
        (record["action"], record["person_id"])
        for _, value, _ in read_topic(s, topics.audit)
        for record in [audit.decode_record(value, "AuditRecord")]
    ]
    assert ("person.erase", person) in actions


def test_quarantine_hold_expires_and_is_dropped_with_audit(make_worker: WorkerFactory) -> None:
    worker = make_worker(quarantine_hold_s=1, maintenance_interval_s=1)
    s = worker.settings
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish(draft({"nhs": NHS}, HOUSING, consent_id="c-never"))

    wait_until(lambda: status(worker, "council-housing")["dropped"] == 1)
    current = status(worker, "council-housing")
    assert current["held_in_quarantine"] == 0 and current["dropped_with_audit"] == 1
    assert current["balanced"] is True
    serde = Serde(SchemaRegistry(s))
    actions = [
        serde.decode_record(v, "AuditRecord")["action"]
        for _, v, _ in read_topic(s, Topics(s.topic_prefix).audit)
    ]
    assert "quarantine.drop.expired" in actions


def test_agreement_is_a_lawful_basis_and_an_unknown_one_is_quarantined(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    with Publisher("city-health", "emis", s) as health:
        health.publish(draft({"nhs": NHS}, HEALTH, consent_id=None, agreement_id=TEST_AGREEMENT_ID))
        health.publish(draft({"nhs": NHS}, HEALTH, consent_id=None, agreement_id="dsa-unknown"))
    person = person_id_for(tok(s, "nhs", NHS))

    wait_until(lambda: view(worker, person) is not None)
    held = wait_for_records(s, Topics(s.topic_prefix).quarantine, 1)
    assert (
        held[0][2]["placehub-reason"]
        == b"data-sharing agreement dsa-unknown is not in this deployment"
    )
    shown = view(worker, person)
    assert shown is not None and shown["event_count"] == 1  # the agreement's event only


def test_accounting_adds_up_for_mixed_input(worker: WorkerProcess) -> None:
    s = worker.settings
    duplicate_id = str(uuid.uuid4())
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS}))
        housing.publish_many([draft({"nhs": NHS}, HOUSING, minutes=n) for n in range(4)])
        housing.publish(draft({"nhs": NHS}, HOUSING, event_id=duplicate_id))
        housing.publish(draft({"nhs": NHS}, HOUSING, event_id=duplicate_id))  # harmless re-send
        housing.publish_many([draft({"nhs": NHS}, HOUSING, consent_id="c-none")] * 2)
    for garbage in (b"x", b"\x00\x00\x00\x00\x01", b"\x00" * 9):
        produce_raw(s, Topics(s.topic_prefix).partner("council-housing"), garbage)

    wait_until(lambda: status(worker, "council-housing")["received"] == 11)
    wait_until(lambda: status(worker, "council-housing")["in_flight"] == 0)
    current = status(worker, "council-housing")
    assert {
        k: current[k] for k in ("in_view", "held_in_quarantine", "dead_lettered", "duplicate")
    } == {
        "in_view": 5,
        "held_in_quarantine": 2,
        "dead_lettered": 3,
        "duplicate": 1,
    }
    assert current["balanced"] is True
    assert (
        worker.get(
            "/v1/partners/council-housing/status", token="demo-practitioner-housing"
        ).status_code
        == 403
    )
    metrics = worker.get("/metrics").text
    settled = 'placehub_records_settled_total{fate="%s",partner="council-housing"} %s'
    assert settled % ("in_view", "5.0") in metrics
    assert settled % ("dead_lettered", "3.0") in metrics
    # Every partner's books in one read, for stewards; partners see only their own.
    place = worker.get("/v1/partners/status", token="demo-steward")
    assert place.status_code == 200
    assert place.json()["partners"]["council-housing"] == {
        k: v for k, v in current.items() if k != "partner"
    }
    assert place.json()["partners"]["city-health"]["received"] == 0
    assert worker.get("/v1/partners/status", token="demo-partner-housing").status_code == 403


def test_a_burst_of_events_ahead_of_their_consents_is_all_released(worker: WorkerProcess) -> None:
    """Consents and held events meet inside one release batch, in either order."""
    s, people = worker.settings, 150
    numbers = [synthetic_nhs_number(random.Random(n)) for n in range(people)]
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_many(
            draft({"nhs": nhs}, HOUSING, consent_id=f"c-burst-{n}") for n, nhs in enumerate(numbers)
        )
        housing.publish_consents(
            consent_draft(f"c-burst-{n}", {"nhs": nhs}) for n, nhs in enumerate(numbers)
        )

    wait_until(
        lambda: status(worker, "council-housing")["in_view"] == people,
        describe=lambda: status(worker, "council-housing"),
    )
    final = status(worker, "council-housing")
    assert (final["held_in_quarantine"], final["in_flight"], final["balanced"]) == (0, 0, True)


# -- crash, replay and several workers ----------------------------------------------------


class Place:
    """A small synthetic place with links, and the reference views computed from it."""

    def __init__(self, settings: Settings, people: int, events: int, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.settings = settings
        self.people = []
        numbers: set[str] = set()
        for i in range(people):
            while (nhs := synthetic_nhs_number(rng)) in numbers:  # distinct people
                pass
            numbers.add(nhs)
            self.people.append(
                {"nhs": nhs, "council": f"HSG-{i:05d}", "consented": rng.random() < 0.85, "i": i}
            )
        self.events: list[tuple[str, EventDraft, dict[str, Any]]] = []
        for n in range(events):
            person = rng.choice(self.people)
            partner = rng.choice(PARTNERS)
            identifiers = (
                {"council": person["council"]}
                if partner == "council-housing" and person["i"] % 3 == 0
                else {"nhs": person["nhs"]}
            )
            payload = {
                "council-housing": HOUSING,
                "northfield-school": SCHOOL,
                "city-health": HEALTH,
            }[partner]
            e = draft(
                identifiers,
                payload,
                consent_id=f"c-{person['i']}",
                event_id=str(uuid.uuid4()),
                minutes=n,
            )
            self.events.append((partner, e, person))

    def consents(self) -> list[ConsentDraft]:
        return [
            consent_draft(f"c-{p['i']}", {"nhs": p["nhs"], "council": p["council"]})
            for p in self.people
            if p["consented"]
        ]

    def links(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """Council housing links its council refs to NHS numbers for every third person."""
        return [
            (("council", p["council"]), ("nhs", p["nhs"])) for p in self.people if p["i"] % 3 == 0
        ]

    def publish(self, chunk: int = 200) -> None:
        with Publisher("council-housing", "northgate", self.settings) as housing:
            housing.publish_consents(self.consents())
        for n, (a, b) in enumerate(self.links()):
            publish_link(self.settings, "council-housing", f"l-{n}", a, b)
        publishers = {p: Publisher(p, "sim", self.settings) for p in PARTNERS}
        try:
            for start in range(0, len(self.events), chunk):
                batch: dict[str, list[EventDraft]] = defaultdict(list)
                for partner, e, _ in self.events[start : start + chunk]:
                    batch[partner].append(e)
                for partner, drafts in batch.items():
                    publishers[partner].publish_many(drafts)
        finally:
            for publisher in publishers.values():
                publisher.close()

    def publish_in_background(self) -> Callable[[], None]:
        """Start ``publish`` in a thread; the returned function waits for it and raises
        what it raised (a lost publish must fail the test as a publish, not as a loss)."""
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self.publish()
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=run)
        thread.start()

        def join() -> None:
            thread.join()
            if failed:
                raise failed[0]

        return join

    def reference(self) -> dict[str, set[str]]:
        """person id → event ids the hub must show, computed straight from the inputs."""
        views: dict[str, set[str]] = defaultdict(set)
        for _, e, person in self.events:
            if person["consented"]:
                tokens = [tok(self.settings, "nhs", person["nhs"])]
                if person["i"] % 3 == 0 or "council" in e.identifiers:
                    tokens.append(tok(self.settings, "council", person["council"]))
                views[mint(tokens)].add(e.event_id or "")
        return views

    def expected_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {
            p: {"received": 0, "in_view": 0, "held_in_quarantine": 0} for p in PARTNERS
        }
        for partner, _, person in self.events:
            counts[partner]["received"] += 1
            counts[partner]["in_view" if person["consented"] else "held_in_quarantine"] += 1
        return counts


def settled(worker: WorkerProcess, place: Place) -> bool:
    expected = place.expected_counts()
    try:
        for partner in PARTNERS:
            current = status(worker, partner)
            if current["received"] != expected[partner]["received"] or current["in_flight"]:
                return False
    except (requests.ConnectionError, AssertionError):
        return False
    return True


def at_rest(worker: WorkerProcess) -> bool:
    """Every stage has read its input to the end (``placehub_consumer_lag_records`` is 0 for
    each at one watchdog look), so no batch is on its way: the partner books settle before
    the patterns stages, which come after the view, have finished."""
    try:
        metrics = worker.get("/metrics").text
    except requests.ConnectionError:
        return False
    lags = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "placehub_consumer_lag_records"
    ]
    return bool(lags) and not any(lags)


def assert_matches_reference(worker: WorkerProcess, place: Place) -> None:
    reference = place.reference()
    expected = place.expected_counts()
    for partner in PARTNERS:
        current = status(worker, partner)
        for bucket in ("received", "in_view", "held_in_quarantine"):
            assert current[bucket] == expected[partner][bucket], (partner, bucket)
        assert current["duplicate"] == 0 and current["dead_lettered"] == 0
        assert current["balanced"] is True
    mismatched = []
    views = stored_views(worker)
    for person_id, event_ids in reference.items():
        shown = views.get(person_id)
        got = {e["event_id"] for e in shown["timeline"]} if shown else set()
        if got != event_ids:
            mismatched.append(f"{person_id}: {len(got)} shown, {len(event_ids)} expected")
    assert mismatched == [], f"{len(mismatched)} of {len(reference)} views differ: {mismatched[:3]}"


def test_kill_9_part_way_then_restart_ends_equal_to_the_reference(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    place = Place(worker.settings, people=150, events=3000)
    published = place.publish_in_background()
    wait_until(
        lambda: sum(status(worker, p)["received"] for p in PARTNERS) >= 800,
        timeout_s=120,
        interval_s=0.1,
    )

    worker.stop(sig=9)  # kill -9: no flush, no commit
    worker.start()
    published()

    wait_until(lambda: settled(worker, place), timeout_s=180, describe=lambda: _statuses(worker))
    eventually(assert_matches_reference, worker, place)


def _statuses(worker: WorkerProcess) -> dict[str, Any]:
    """Each partner's books, and where its topic ends and is committed per partition (so a
    timeout shows whether a record was never published, never read or committed past)."""
    topics = Topics(worker.settings.topic_prefix)
    shown: dict[str, Any] = {}
    for partner in PARTNERS:
        topic = topics.partner(partner)
        try:
            offsets = {
                "ends": ends(worker.settings, topic),
                "committed": committed(worker.settings, topic),
            }
        except Exception as exc:  # a description must not fail the description
            offsets = {"offsets": repr(exc)}
        shown[partner] = {**status(worker, partner), **offsets}
    try:  # a stalled stage holds its batch, and its partitions, on purpose
        shown["health"] = worker.get("/v1/health", token=None).json()
    except Exception as exc:
        shown["health"] = repr(exc)
    return shown


def eventually(check: Any, *args: Any, timeout_s: float = 60) -> None:
    """Run ``check`` until it passes; after ``timeout_s`` its last failure is raised."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check(*args)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_replay_rebuilds_the_same_views_and_counts(worker: WorkerProcess) -> None:
    place = Place(worker.settings, people=40, events=300, seed=5)
    place.publish()
    wait_until(lambda: settled(worker, place), timeout_s=120, describe=lambda: _statuses(worker))
    eventually(assert_matches_reference, worker, place)

    worker.stop()
    env = worker.env
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Topics(worker.settings.topic_prefix).events in done.stdout
    worker.start()

    wait_until(lambda: settled(worker, place), timeout_s=120, describe=lambda: _statuses(worker))
    eventually(assert_matches_reference, worker, place)


def test_replay_refuses_while_a_worker_runs(worker: WorkerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay"],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "stop them before replay" in done.stderr


def test_two_workers_each_answer_for_every_person(make_worker: WorkerFactory) -> None:
    first = make_worker()
    from tests.integration.helpers import free_port

    second = make_worker(web_port=free_port(), state_dir=first.settings.state_dir.parent / "second")
    place = Place(first.settings, people=30, events=200, seed=3)
    place.publish()
    wait_until(lambda: settled(first, place), timeout_s=120, describe=lambda: _statuses(first))
    eventually(assert_matches_reference, first, place)
    answered = 0
    for person_id in place.reference():  # each worker answers for people the other holds
        path = f"/v1/people/{person_id}"
        one, other = (w.get(path, token="demo-practitioner-housing") for w in (first, second))
        assert (one.status_code, one.json()) == (other.status_code, other.json())
        answered += one.status_code == 200
    assert answered > 0
