"""Connector logic without a broker: SDK failures, mappings, retries, the simulated place."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import KafkaError

from connectors import (
    BrokerUnavailable,
    EventDraft,
    EventTooLarge,
    InvalidEvent,
    NoConsentReference,
    Publisher,
    pseudonymise,
    simulate,
)
from connectors.csv_drop import event_id_for, spreadsheet_safe
from connectors.delivery import BATCH_BYTES, Delivery, MissingTopic, Outgoing
from connectors.events import RecentIds
from connectors.mapping import EventMapping
from connectors.pseudonymise import normalise_nhs_number, normalise_upn
from connectors.simulate import (
    HOUSEHOLD_EVENTS,
    PARTNERS,
    Place,
    synthetic_nhs_number,
    synthetic_upn,
)
from hub.agreements import load_agreements
from hub.alerts import evaluate, load_rules
from hub.config import PROJECT_ROOT, Settings
from hub.errors import ConfigError
from hub.models import BasisKind, HousingEvent, HousingKind, LawfulBasis
from hub.partners import load_partners
from tests.unit.fakes import MemoryRegistry

NHS = "943 476 5919"


def _settings(**settings: object) -> Settings:
    return Settings(**{"allow_test_key": True, **settings})  # type: ignore[arg-type]


def _publisher(partner: str = "council-housing", **settings: object) -> Publisher:
    # Nothing is sent: prepare() only validates, tokenises and encodes.
    return Publisher(partner, "northgate", _settings(**settings), MemoryRegistry())


def _draft(**changes: object) -> EventDraft:
    fields: dict[str, object] = {
        "source_ref": "HSG-1",
        "identifiers": {"nhs": NHS},
        "basis": LawfulBasis(kind=BasisKind.CONSENT, consent_id="c-1", purpose="early-help"),
        "payload": HousingEvent(kind=HousingKind.ARREARS),
        "occurred_at": datetime.now(UTC).replace(microsecond=0) - timedelta(days=30),
    }
    fields.update(changes)
    return EventDraft.model_validate(fields)


def test_each_failure_has_its_own_exception() -> None:
    publisher = _publisher()
    with pytest.raises(NoConsentReference):
        publisher.prepare(_draft(basis=None))
    with pytest.raises(NoConsentReference):
        EventDraft.parse({"basis": {"kind": "CONSENT", "purpose": "early-help"}})
    with pytest.raises(InvalidEvent) as bad_nhs:
        publisher.prepare(_draft(identifiers={"nhs": "943 476 5910"}))
    assert bad_nhs.value.errors == [("/identifiers/nhs", "the NHS number's check digit is wrong")]
    assert "5910" not in str(bad_nhs.value)
    with pytest.raises(EventTooLarge, match="over the limit of 64"):
        small = _settings().model_copy(update={"max_event_bytes": 64})
        Publisher("council-housing", "northgate", small, MemoryRegistry()).prepare(_draft())
    assert isinstance(publisher.prepare(_draft()), Outgoing)


def test_no_place_key_no_publisher() -> None:
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY_FILE: no place key is set"):
        _publisher(allow_test_key=False, place_key=None, place_key_file=None)
    with pytest.raises(ConfigError, match="PLACEHUB_PLACE_KEY: the place key has 8 bytes"):
        _publisher(allow_test_key=False, place_key="too-shrt", place_key_file=None)


def test_source_ref_may_not_repeat_an_identifier() -> None:
    publisher = _publisher()
    with pytest.raises(InvalidEvent) as caught:
        publisher.prepare(
            _draft(source_ref="hsg-0042", identifiers={"nhs": NHS, "council": "HSG 0042"})
        )
    [(pointer, message)] = caught.value.errors
    assert pointer == "/source_ref" and "repeats one of the event's identifiers" in message
    assert "0042" not in str(caught.value)
    with pytest.raises(InvalidEvent, match="national identifier"):
        publisher.prepare(_draft(source_ref="401-023-2137"))
    publisher.prepare(
        _draft(source_ref="case-1042", identifiers={"nhs": NHS, "council": "HSG-0042"})
    )


def test_dummy_identifiers_and_unknown_keys_are_refused_without_echo() -> None:
    publisher = _publisher()
    with pytest.raises(InvalidEvent) as dummy:
        publisher.prepare(_draft(identifiers={"nhs": "999 999 9999"}))
    assert dummy.value.errors[0][0] == "/identifiers/nhs" and "9999" not in str(dummy.value)
    with pytest.raises(InvalidEvent) as unknown:
        EventDraft.parse({**_draft().model_dump(), "9434765919": "x"})
    assert unknown.value.errors == [
        ("/-", "an unknown key (not a field's name; not repeated here) is not allowed")
    ]
    with pytest.raises(InvalidEvent) as scheme:
        publisher.prepare(_draft(identifiers={"9434765919": "x"}))
    assert "9434765919" not in str(scheme.value)


def test_reject_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    cells = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "ok", ""]
    assert spreadsheet_safe(cells) == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok", "",
    ]  # fmt: skip


def test_simulated_nhs_numbers_are_never_dummies_or_test_numbers() -> None:
    place = Place(seed=1, people=1)
    numbers = [synthetic_nhs_number(place.rng) for _ in range(5000)]
    assert all(normalise_nhs_number(number) == number for number in numbers)
    assert not any(number.startswith("999") for number in numbers)


def test_broker_unavailable_after_retries_with_backoff() -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:9", request_timeout_ms=300)
    delivery = Delivery(settings, attempts=3, backoff_ms=100, timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="after 3 attempt"):
        delivery.deliver([Outgoing("t", b"k", b"v", "id-1")])
    assert time.monotonic() - started >= 0.15  # two backoffs of at least half their ceiling


class _Answer:
    """A delivery report's message: where the record was written."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class _Librdkafka:
    """confluent-kafka's Producer as Delivery uses it: each record is answered at the next
    flush, by ``verdicts`` (a KafkaError code, or None for written) taken in turn."""

    made: ClassVar[list[dict[str, object]]] = []
    verdicts: ClassVar[list[int | None]] = []

    def __init__(self, config: dict[str, object]) -> None:
        self.made.append(config)
        self.queued: list[tuple[str, bytes, Callable[..., None]]] = []
        self.offset = 0

    def list_topics(self, timeout: float) -> object:
        return type("Metadata", (), {"topics": {"t": None}})()

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]
    ) -> None:
        self.queued.append((topic, key, on_delivery))

    def flush(self, timeout: float = 0) -> int:
        for topic, _key, report in self.queued:
            code = self.verdicts.pop(0)
            self.offset += 1
            report(None if code is None else KafkaError(code), _Answer(topic, 0, self.offset))
        self.queued = []
        return 0

    def purge(self) -> None:
        self.queued = []


@pytest.fixture
def librdkafka(monkeypatch: pytest.MonkeyPatch) -> type[_Librdkafka]:
    monkeypatch.setattr("connectors.delivery.Producer", _Librdkafka)
    _Librdkafka.made, _Librdkafka.verdicts = [], []
    return _Librdkafka


def test_delivery_sends_again_only_what_was_not_acknowledged(
    librdkafka: type[_Librdkafka],
) -> None:
    librdkafka.verdicts = [None, KafkaError.REQUEST_TIMED_OUT, None, None]
    items = [Outgoing("t", b"k", f"v{n}".encode(), f"id-{n}") for n in range(3)]

    receipts = Delivery(_settings(), attempts=2, backoff_ms=1).deliver(items)

    assert [r.event_id for r in receipts] == ["id-0", "id-1", "id-2"]
    assert [r.offset for r in receipts] == [1, 1, 3]  # id-1: the second producer's first
    assert len(librdkafka.made) == 2  # a fresh producer after the failure


def test_delivery_names_what_it_could_not_send_and_why(librdkafka: type[_Librdkafka]) -> None:
    librdkafka.verdicts = [None, KafkaError._MSG_TIMED_OUT]
    with pytest.raises(BrokerUnavailable, match="1 of 2 records not acknowledged after 1") as e:
        Delivery(_settings(), attempts=1).deliver([Outgoing("t", b"k", b"v", "a")] * 2)
    assert "timed out" in str(e.value)


def test_a_record_the_broker_refuses_as_too_large_is_not_sent_again(
    librdkafka: type[_Librdkafka],
) -> None:
    librdkafka.verdicts = [KafkaError.MSG_SIZE_TOO_LARGE]
    with pytest.raises(EventTooLarge, match="3 bytes, over the limit of 1000000"):
        Delivery(_settings(), attempts=3).deliver([Outgoing("t", b"k", b"big", "a")])
    assert len(librdkafka.made) == 1


def test_a_topic_the_cluster_lacks_is_refused_before_anything_is_sent(
    librdkafka: type[_Librdkafka],
) -> None:
    with pytest.raises(MissingTopic, match="elsewhere: the topic does not exist"):
        Delivery(_settings()).deliver([Outgoing("elsewhere", b"k", b"v", "a")])


def test_deliverys_producer_partitions_as_java_does_and_batches_a_partitions_share_at_once(
    librdkafka: type[_Librdkafka],
) -> None:
    assert Delivery(_settings()).deliver([]) == [] and librdkafka.made == []  # nothing to send
    Delivery(_settings()).require_topics({"t"})
    config = librdkafka.made[0]
    # librdkafka's murmur2_random is the Java client's murmur2 for every non-null key (the
    # broker test checks each receipt's partition against hub.partitions).
    assert config["partitioner"] == "murmur2_random"
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    # 500 events of ~330 bytes over four partitions fit one batch each, within the broker's
    # 1 MiB batch limit.
    assert config["batch.size"] == BATCH_BYTES and 500 * 330 // 4 < BATCH_BYTES < 2**20
    small = Settings(allow_test_key=True, max_event_bytes=10_000)
    Delivery(small).require_topics({"t"})
    assert librdkafka.made[1]["batch.size"] == librdkafka.made[1]["message.max.bytes"] == 11_024


def test_a_publisher_tokenises_each_identifier_once_and_refuses_a_bad_one_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = _publisher()
    first = publisher.prepare(_draft(source_ref="HSG-1"))
    calls: list[str] = []
    real = pseudonymise.token

    def counted(scheme: str, value: str, place_key: bytes) -> str:
        calls.append(scheme)
        return real(scheme, value, place_key)

    monkeypatch.setattr("connectors.publisher.token", counted)
    fresh = _publisher()  # nothing kept yet
    tokens = {fresh.prepare(_draft(source_ref=f"HSG-{n}")).key for n in range(5)}
    assert calls == ["nhs"] and tokens == {first.key}  # the same token, worked out once
    for _ in range(2):
        with pytest.raises(InvalidEvent):
            fresh.prepare(_draft(identifiers={"nhs": "943 476 5910"}))
    assert calls == ["nhs", "nhs", "nhs"]  # a refusal is not kept


def test_kafka_python_checks_record_batches_with_the_c_crc32c() -> None:
    """kafka-python's own "crc32c" extra (pinned, issue 15): without it every record batch
    a producer writes or a consumer reads is summed in pure Python, about 1.5 ms for 16 KB."""
    from kafka.record import util

    assert util.crc32c_c is not None, "the crc32c package is missing"
    assert util.calc_crc32c.__defaults__ == (util.crc32c_c,)


def test_event_ids_are_stable_per_row() -> None:
    assert event_id_for("p", "file", "7") == event_id_for("p", "file", "7")
    assert event_id_for("p", "file", "7") != event_id_for("p", "file", "8")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("fields: {}", "source_system: Field required"),
        (
            "source_system: s\nfields: {nhs_number: X}",
            "fields: Value error, unknown target 'nhs_number'",
        ),
        (
            "source_system: s\nfields: {source_ref: {column: A, value: B}}",
            "give exactly one of 'column' or 'value'",
        ),
        ("source_system: s\nfields: {source_ref: A}", "the mapping needs a 'occurred_at' field"),
        ("source_system: s\ntimezone: Mars/Base\nfields: {}", "unknown time zone 'Mars/Base'"),
        ("source_system: s\ncsv: {encoding: utf-16}\nfields: {}", "csv.encoding: Input should"),
    ],
)
def test_mapping_files_are_rejected_with_file_key_and_reason(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        EventMapping.load(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_a_large_load_stays_in_the_past() -> None:
    """1 to 90 minutes apart, 20,000 events from 60 days ago ran 600 days into the future,
    which the hub refuses (occurred_at at most 5 minutes ahead): the bench could not load."""
    events = [draft for _, draft in Place(seed=3, people=200).events(20_000)]
    assert max(draft.occurred_at for draft in events) <= datetime.now(UTC)
    assert len({draft.occurred_at for draft in events}) > 19_000  # still spread out


def test_simulated_place_is_deterministic_with_six_partners_households_and_referrals() -> None:
    first = [(p, d.model_dump()) for p, d in Place(seed=3, people=120).events(600)]
    second = [(p, d.model_dump()) for p, d in Place(seed=3, people=120).events(600)]
    other = [(p, d.model_dump()) for p, d in Place(seed=4, people=120).events(600)]
    assert first == second and first != other
    assert len(PARTNERS) >= 6 and {p for p, _ in first} == set(PARTNERS)
    place = Place(seed=3, people=120)
    assert len(place.households) < len(place.people)
    assert any(len(h.needs) >= 2 for h in place.households), "needs never co-occur"
    assert all(normalise_upn(synthetic_upn(place.rng)) for _ in range(20))
    declared = {p.id for p in load_partners(PROJECT_ROOT / "deploy" / "local" / "partners.yaml")}
    assert declared == set(PARTNERS), "the demo worker must subscribe to every simulated partner"


def test_referral_flows_follow_their_trigger() -> None:
    place = Place(seed=5, people=150)
    seen: dict[str, list[tuple[datetime, str]]] = {}
    for _, draft in place.events(3000):
        seen.setdefault(draft.source_ref[4:], []).append(
            (draft.occurred_at, draft.payload.event_type)
        )
    followed = 0
    for timeline in seen.values():
        kinds = [kind for _, kind in sorted(timeline)]
        if "housing.homelessness_presentation" in kinds:
            after = kinds[kinds.index("housing.homelessness_presentation") :]
            followed += "health.gp_registration" in after
    assert followed > 0


def _demo_timelines(place: Place, events: int) -> dict[int, list[dict[str, object]]]:
    """Each person's timeline as the hub would hold it: events under an agreement, and
    events under a consent the person gave (the rest wait in quarantine)."""
    timelines: dict[int, list[dict[str, object]]] = {}
    for n, (partner, draft) in enumerate(place.events(events)):
        person = place.people[int(draft.source_ref[4:])]
        if draft.basis.agreement_id or person.consented:
            timelines.setdefault(person.index, []).append(
                {
                    "event_id": str(n),
                    "event_type": draft.payload.event_type,
                    "partner_id": partner,
                    "occurred_at": draft.occurred_at,
                }
            )
    return timelines


class _Clock(datetime):
    """``datetime`` whose ``now`` is a given moment: the simulator read at that hour."""

    at = datetime(2026, 12, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz: object = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), UTC)


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> datetime:
    monkeypatch.setattr(simulate, "datetime", _Clock)
    monkeypatch.setattr(_Clock, "at", moment)
    return moment


@pytest.mark.parametrize("hour", [0, 9, 22])
def test_every_shipped_rule_fires_for_someone_in_the_demo_place(
    monkeypatch: pytest.MonkeyPatch, hour: int
) -> None:
    """make demo's place (seed 7, 200 people, 1,000 events) evaluated at that hour, as the
    alerts stage does while the demo loads it. Before the police, children's services, job
    centre and food bank joined, four rules could never fire; before a household's notice
    named its children, housing-crisis-and-school could not; before the events reached the
    last 30 days, repeat-ae-attendance could not; before the place was the same at every
    hour, concern-during-open-plan did not fire late in the evening."""
    rules = load_rules(PROJECT_ROOT / "deploy/local/alerts", list(PARTNERS))
    now = _at(monkeypatch, datetime(2026, 12, 1, hour, 37, tzinfo=UTC))
    fired: dict[str, list[set[str]]] = {}
    for timeline in _demo_timelines(Place(seed=7, people=200), 1000).values():
        for rule in rules:
            if (match := evaluate(rule, timeline, now)) is not None:
                fired.setdefault(rule.code, []).append({e.domain for e in match.events})
    assert set(fired) == {rule.code for rule in rules}
    new_domains = {"police", "social_care", "welfare", "community"}
    assert all(any(d in domains for domains in fired["multi-domain-needs"]) for d in new_domains)


def test_partners_share_under_a_lawful_basis_the_demo_deployment_holds() -> None:
    """The police and children's services share under the safeguarding agreement (which
    covers their event types and which they signed), everyone else under the consent."""
    agreements = load_agreements(PROJECT_ROOT / "deploy/local/agreements")
    place = Place(seed=3, people=120)
    consent = place.consent(place.people[0])
    assert set(consent.sharing_partners) == set(PARTNERS)
    by_partner: dict[str, set[str | None]] = {}
    for partner, draft in place.events(1500):
        basis = draft.basis
        by_partner.setdefault(partner, set()).add(basis.agreement_id)
        if basis.kind is BasisKind.AGREEMENT:
            agreement = agreements.get(basis.agreement_id or "")
            assert agreement is not None and partner in agreement.partners
            assert agreement.in_force(draft.occurred_at.date())
        else:
            assert basis.consent_id == place.people[int(draft.source_ref[4:])].consent_id
    assert (
        by_partner["city-police"] == by_partner["council-early-help"] == {"dsa-safeguarding-2026"}
    )
    assert by_partner["city-jobcentre"] == by_partner["city-food-bank"] == {None}


def test_a_household_notice_names_its_children_and_plans_follow_assessments() -> None:
    place = Place(seed=5, people=150)
    events = [(partner, draft) for partner, draft in place.events(3000)]
    person_of = {draft.source_ref: place.people[int(draft.source_ref[4:])] for _, draft in events}
    children_named = [
        (partner, draft)
        for partner, draft in events
        if (draft.payload.family, draft.payload.kind.value) in HOUSEHOLD_EVENTS
        and person_of[draft.source_ref].school is not None
    ]
    assert children_named, "a child is never named on a household's notice"
    for partner, draft in children_named:
        child = person_of[draft.source_ref]
        adults = {p.landlord for p in place.households[child.household].members}
        assert partner in adults  # the household's own landlord recorded it
    seen: dict[str, list[str]] = {}
    for _, draft in sorted(events, key=lambda item: item[1].occurred_at):
        seen.setdefault(draft.source_ref[4:], []).append(draft.payload.event_type)
    plans = [kinds for kinds in seen.values() if "social_care.plan_opened" in kinds]
    assert plans
    for kinds in plans:
        opened = kinds.index("social_care.plan_opened")
        assert "social_care.assessment" in kinds[:opened]  # never a plan out of nowhere


def test_recent_ids_say_new_once_and_forget_beyond_the_window() -> None:
    seen = RecentIds(window=2)
    assert [seen.first_time(i) for i in ("a", "b", "a", "c", "b", "a")] == [
        True,
        True,
        False,
        True,
        True,  # "b" was pushed out by "c" ("a" was seen again, so it stayed)
        True,
    ]
    assert seen.repeats == 1
    with pytest.raises(ValueError, match="window must be at least 1"):
        RecentIds(window=0)


def test_a_seed_makes_the_same_place_at_any_hour_of_the_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same people and events, in the same order, whether the demo starts at 09:30 or
    23:30: only the times differ (the steps' bound moved with the clock, and so did every
    random draw after the first)."""

    def place_at(hour: int) -> list[tuple[str, str, str]]:
        _at(monkeypatch, datetime(2026, 12, 1, hour, 30, tzinfo=UTC))
        events = Place(seed=7, people=200).events(1000)
        return [(partner, d.payload.event_type, d.source_ref) for partner, d in events]

    assert place_at(9) == place_at(23)
