"""Every shipped alert rule on the real broker, plus escalation and suppression.

One worker serves the module; each test has its own people (distinct NHS numbers). A table
gives each rule in ``deploy/local/alerts`` a timeline that makes it fire for one person and
a near miss for another (one fewer, outside the window, the wrong order, a plan closed
between, a kind that is not the one meant). Timelines are published through the SDK as
partners' systems would send them, in time order per person: each person's k-th event in
round k, the hub settled between rounds (every event in a view, the view and alerts stages
caught up), so a near miss is never seen half-published and "nothing fired" is asserted
only once the hub has done everything it was sent. Event times are relative to now, as
rule windows are relative to when the alerts stage evaluates. Last, make demo's simulated
place, on a worker of its own, makes every shipped rule fire.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors import ConsentDraft, EventDraft, Publisher
from connectors.simulate import PARTNERS, Place, synthetic_nhs_number
from hub.alerts import load_rules
from hub.config import PROJECT_ROOT, Settings
from hub.models import (
    Alert,
    BasisKind,
    Benefit,
    CareService,
    CommunityEvent,
    CommunityKind,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    Payload,
    PoliceEvent,
    PoliceKind,
    SocialCareEvent,
    SocialCareKind,
    WelfareEvent,
    WelfareKind,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.helpers import (
    WorkerProcess,
    caught_up,
    drop_topics,
    free_port,
    read_topic,
    worker_env,
)
from tests.integration.test_stream_core import status, tok, wait_until

HOUSING_PRACTITIONER = "demo-practitioner-housing"
FINANCIAL_INCLUSION = "demo-practitioner-financial-inclusion"  # housing's team
FOOD_BANK_PRACTITIONER = "demo-practitioner-food-bank"

ARREARS = HousingEvent(kind=HousingKind.ARREARS)
NOTICE = HousingEvent(kind=HousingKind.NOTICE_SERVED)
ATTENDANCE = EducationEvent(kind=EducationKind.ATTENDANCE)
SUSPENSION = EducationEvent(kind=EducationKind.SUSPENSION)
AE = HealthEvent(kind=HealthKind.AE_ATTENDANCE)
MENTAL_HEALTH = HealthEvent(kind=HealthKind.MENTAL_HEALTH_REFERRAL)
GP = HealthEvent(kind=HealthKind.GP_REGISTRATION)
CONCERN = PoliceEvent(kind=PoliceKind.WELFARE_CONCERN)
PLAN_OPENED = SocialCareEvent(kind=SocialCareKind.PLAN_OPENED, service=CareService.EARLY_HELP)
PLAN_CLOSED = SocialCareEvent(kind=SocialCareKind.PLAN_CLOSED, service=CareService.EARLY_HELP)
SANCTION = WelfareEvent(kind=WelfareKind.SANCTION, benefit=Benefit.UNIVERSAL_CREDIT)
CLAIM_CHANGE = WelfareEvent(kind=WelfareKind.CLAIM_CHANGE, benefit=Benefit.UNIVERSAL_CREDIT)
FOOD_BANK = CommunityEvent(kind=CommunityKind.FOOD_BANK)
DEBT_ADVICE = CommunityEvent(kind=CommunityKind.DEBT_ADVICE)

# (partner, payload, days ago), oldest first.
Step = tuple[str, Payload, int]
Timeline = tuple[Step, ...]


@dataclass(frozen=True)
class Case:
    """A rule, a timeline that makes it fire, its recipients, and a near miss."""

    rule: str
    fires: Timeline
    recipients: list[str]
    near_miss: Timeline
    why_not: str


CASES = [
    Case(
        "arrears-then-notice",
        (("council-housing", ARREARS, 50), ("council-housing", NOTICE, 10)),
        ["council-housing"],
        (("council-housing", NOTICE, 50), ("council-housing", ARREARS, 10)),
        "the notice came first",
    ),
    Case(
        "concern-during-open-plan",
        (("council-early-help", PLAN_OPENED, 30), ("city-police", CONCERN, 5)),
        ["council-early-help"],  # the lead: the partner holding the open plan
        (
            ("council-early-help", PLAN_OPENED, 30),
            ("council-early-help", PLAN_CLOSED, 20),
            ("city-police", CONCERN, 5),
        ),
        "the plan was closed before the concern",
    ),
    Case(
        "housing-crisis-and-school",
        (("council-housing", NOTICE, 20), ("northfield-school", ATTENDANCE, 10)),
        ["council-housing", "northfield-school"],
        (("northfield-school", ATTENDANCE, 70), ("council-housing", NOTICE, 20)),
        "the absence is outside the 60-day window",
    ),
    Case(
        "many-services-involved",
        (
            ("council-housing", ARREARS, 40),
            ("riverside-homes", ARREARS, 30),
            ("city-health", AE, 20),
            ("city-gp-federation", GP, 10),
        ),
        ["city-gp-federation", "city-health", "council-housing", "riverside-homes"],
        (("council-housing", ARREARS, 40), ("city-health", AE, 20), ("city-gp-federation", GP, 10)),
        "three services, not four",
    ),
    Case(
        "multi-domain-needs",
        (
            ("council-housing", ARREARS, 30),
            ("city-jobcentre", CLAIM_CHANGE, 20),
            ("city-food-bank", DEBT_ADVICE, 10),
        ),
        ["city-food-bank", "city-jobcentre", "council-housing"],
        (
            ("council-housing", ARREARS, 30),
            ("city-jobcentre", CLAIM_CHANGE, 20),
            ("city-gp-federation", GP, 10),
        ),
        "a GP registration is not a need",
    ),
    Case(
        "repeat-ae-attendance",
        (("city-health", AE, 20), ("city-health", AE, 10), ("city-health", AE, 2)),
        ["city-health"],
        (("city-health", AE, 40), ("city-health", AE, 10), ("city-health", AE, 2)),
        "the first attendance is outside the 30-day window",
    ),
    Case(
        "sanction-then-food-bank",
        (("city-jobcentre", SANCTION, 30), ("city-food-bank", FOOD_BANK, 10)),
        ["council-housing"],  # the rule's named partner (its financial inclusion team)
        (("city-jobcentre", SANCTION, 55), ("city-food-bank", FOOD_BANK, 10)),
        "the food-bank visit came 45 days after the sanction",
    ),
    Case(
        "school-absence-and-mental-health",
        (("northfield-school", ATTENDANCE, 20), ("minds-matter", MENTAL_HEALTH, 5)),
        ["minds-matter", "northfield-school"],
        (("northfield-school", SUSPENSION, 20), ("minds-matter", MENTAL_HEALTH, 5)),
        "a suspension is not absence",
    ),
]


class RuleHub:
    """The module's worker, the people published to it, and what it has received."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.settings: Settings = worker.settings
        self.rng = random.Random(20261201)
        self.consent_of: dict[str, str] = {}  # NHS number -> the person's consent id
        self.published: Counter[str] = Counter()
        self.registry = SchemaRegistry(self.settings)
        self.serde = Serde(self.registry)

    def person(self) -> str:
        """A new person's NHS number, with a consent shared with every partner of the place."""
        while (nhs := synthetic_nhs_number(self.rng)) in self.consent_of:
            pass
        self.consent_of[nhs] = f"c-{len(self.consent_of)}"
        consent = ConsentDraft(
            consent_id=self.consent_of[nhs],
            identifiers={"nhs": nhs},
            purposes=["early-help"],
            sharing_partners=list(PARTNERS),
        )
        with Publisher("council-housing", "northgate", self.settings) as housing:
            housing.publish_consent(consent)
        return nhs

    def person_id(self, nhs: str) -> str:
        return person_id_for(tok(self.settings, "nhs", nhs))

    def publish(self, timelines: dict[str, Timeline]) -> None:
        """Each person's k-th event in round k, the hub settled after every round."""
        now = datetime.now(UTC)
        for timeline in timelines.values():
            ages = [days for _, _, days in timeline]
            assert ages == sorted(ages, reverse=True), f"a timeline is oldest first: {timeline}"
        for k in range(max(len(timeline) for timeline in timelines.values())):
            by_partner: dict[str, list[EventDraft]] = {}
            for nhs, timeline in timelines.items():
                if k < len(timeline):
                    partner, payload, days = timeline[k]
                    by_partner.setdefault(partner, []).append(
                        self._draft(nhs, partner, payload, now - timedelta(days=days))
                    )
            for partner, drafts in by_partner.items():
                with Publisher(partner, PARTNERS[partner].source_system, self.settings) as p:
                    p.publish_many(drafts)
                self.published[partner] += len(drafts)
            self.settle()

    def _draft(self, nhs: str, partner: str, payload: Payload, when: datetime) -> EventDraft:
        consent_id = self.consent_of[nhs]
        return EventDraft(
            source_ref=f"REF-{consent_id}",
            identifiers={"nhs": nhs},
            basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help"),
            payload=payload,
            occurred_at=when,
        )

    def settle(self) -> None:
        """Wait until every event published is in a view, and the view and alerts stages
        have committed all they read (they commit only after their outputs are delivered),
        so hub.alerts holds everything these events will raise."""
        worker, s = self.worker, self.settings

        def in_view() -> dict[str, int]:
            return {p: status(worker, p)["in_view"] for p in self.published}

        wait_until(
            lambda: in_view() == dict(self.published),
            timeout_s=90,
            describe=lambda: f"in view {in_view()}, published {dict(self.published)}",
        )
        for stage in ("view", "view-transfer", "alerts"):
            topic = f"{s.app_id}-{stage}"
            wait_until(lambda t=topic: caught_up(s, t), describe=lambda t=topic: t)

    def alerts(self) -> list[Alert | None]:
        """Every record on hub.alerts, in order per alert id (a key's partition)."""
        records = read_topic(self.settings, Topics(self.settings.topic_prefix).alerts)
        return [self.serde.decode(value, Alert) if value else None for _, value, _ in records]

    def alerts_of(self, nhs: str) -> list[Alert]:
        person = self.person_id(nhs)
        return [a for a in self.alerts() if a is not None and a.person_id == person]

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the worker's /metrics (admin token), as the scrape shows it."""
        reply = self.worker.get("/metrics")
        assert reply.status_code == 200, reply.text
        for family in text_string_to_metric_families(reply.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise AssertionError(f"/metrics has no {name} {labels}")

    def inbox(self, token: str) -> list[dict[str, Any]]:
        reply = self.worker.get("/v1/alerts", token=token)
        assert reply.status_code == 200, reply.text
        alerts: list[dict[str, Any]] = reply.json()["alerts"]
        return alerts


def start_worker(broker_settings: Settings, root: Path, agreements: Path) -> WorkerProcess:
    """A worker on its own topics, app id, port and state under ``root``."""
    run = uuid.uuid4().hex[:8]
    settings = broker_settings.model_copy(
        update={
            "topic_prefix": f"t{run}.",
            "app_id": f"placehub-t{run}",
            "web_port": free_port(),
            "state_dir": root / "state",
            "agreements_dir": agreements,
        }
    )
    worker = WorkerProcess(settings, root / "worker.log", env=worker_env(settings))
    worker.start()
    return worker


@pytest.fixture(scope="module")
def hub(broker_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuleHub]:
    """One worker for the module; every event here is under its person's consent, so it
    needs no agreement."""
    root = tmp_path_factory.mktemp("alert-rules")
    (root / "agreements").mkdir()
    worker = start_worker(broker_settings, root, root / "agreements")
    rules_hub = RuleHub(worker)
    try:
        yield rules_hub
    finally:
        worker.stop()
        rules_hub.registry.close()
        drop_topics(worker.settings)


@pytest.fixture(scope="module")
def published(hub: RuleHub) -> dict[str, tuple[str, str]]:
    """Every case's two people (firing, near miss) by rule, their timelines published."""
    people = {case.rule: (hub.person(), hub.person()) for case in CASES}
    timelines: dict[str, Timeline] = {}
    for case in CASES:
        fires, near = people[case.rule]
        timelines[fires], timelines[near] = case.fires, case.near_miss
    hub.publish(timelines)
    return people


def test_the_table_has_every_shipped_rule() -> None:
    shipped = load_rules(PROJECT_ROOT / "deploy/local/alerts", list(PARTNERS))
    assert sorted(case.rule for case in CASES) == sorted(rule.code for rule in shipped)


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_a_shipped_rule_fires_on_its_timeline_and_not_on_a_near_miss(
    hub: RuleHub, published: dict[str, tuple[str, str]], case: Case
) -> None:
    fires, near = published[case.rule]
    raised = hub.alerts_of(fires)
    assert [a.rule_code for a in raised] == [case.rule]  # that rule, once, and no other
    alert = raised[0]
    assert alert.recipients == case.recipients
    assert alert.explanation == sorted({payload.event_type for _, payload, _ in case.fires})
    assert alert.partners == sorted({partner for partner, _, _ in case.fires})
    assert hub.alerts_of(near) == [], f"fired on a near miss: {case.why_not}"


def test_the_financial_inclusion_alert_reaches_that_team_only(
    hub: RuleHub, published: dict[str, tuple[str, str]]
) -> None:
    """sanction-then-food-bank tells council-housing/financial-inclusion: that team's
    practitioners see it, with the events their consent shares; housing's others and the
    food bank do not."""
    fires, _ = published["sanction-then-food-bank"]
    person = hub.person_id(fires)
    seen = [a for a in hub.inbox(FINANCIAL_INCLUSION) if a["person_id"] == person]
    assert [a["rule"] for a in seen] == ["sanction-then-food-bank"]
    assert seen[0]["events_withheld"] == 0
    assert [e["event_type"] for e in seen[0]["events"]] == [
        "welfare.sanction",
        "community.food_bank",
    ]
    assert [a for a in hub.inbox(FOOD_BANK_PRACTITIONER) if a["person_id"] == person] == []
    assert [a for a in hub.inbox(HOUSING_PRACTITIONER) if a["person_id"] == person] == []


def test_an_open_alert_that_gets_stronger_is_re_sent_with_the_same_id(hub: RuleHub) -> None:
    nhs = hub.person()
    three_domains = (
        ("council-housing", ARREARS, 30),
        ("city-jobcentre", CLAIM_CHANGE, 20),
        ("city-food-bank", DEBT_ADVICE, 10),
    )
    hub.publish({nhs: three_domains})
    (first,) = hub.alerts_of(nhs)
    assert first.rule_code == "multi-domain-needs"

    hub.publish({nhs: (("city-police", CONCERN, 2),)})  # a fourth domain (and partner)
    by_rule: dict[str, list[Alert]] = {}
    for alert in hub.alerts_of(nhs):
        by_rule.setdefault(alert.rule_code, []).append(alert)
    assert sorted(by_rule) == ["many-services-involved", "multi-domain-needs"]
    sent = by_rule["multi-domain-needs"]
    assert [a.alert_id for a in sent] == [first.alert_id, first.alert_id]
    escalated = sent[1]
    assert escalated.explanation == sorted([*first.explanation, "police.welfare_concern"])
    assert escalated.partners == sorted([*first.partners, "city-police"])
    assert "city-police" in escalated.recipients and "city-police" not in first.recipients
    # The inbox keeps one alert for the rule: the escalated one, with its four events.
    person = hub.person_id(nhs)
    kept = [
        a
        for a in hub.inbox(HOUSING_PRACTITIONER)
        if a["person_id"] == person and a["rule"] == "multi-domain-needs"
    ]
    assert [(a["alert_id"], len(a["events"])) for a in kept] == [(first.alert_id, 4)]


def test_a_repeat_within_the_cooldown_raises_nothing_and_is_counted_suppressed(
    hub: RuleHub,
) -> None:
    """Five more arrears after the notice (no stronger: the notice still follows one
    arrears) within the 30-day cooldown. The scrape rounds alert counts down to a multiple
    of 5, so five suppressions are what it can show."""
    nhs = hub.person()
    hub.publish({nhs: (("council-housing", ARREARS, 50), ("council-housing", NOTICE, 10))})
    (raised,) = hub.alerts_of(nhs)
    assert raised.rule_code == "arrears-then-notice"
    for days in (8, 7, 6, 5, 4):
        hub.publish({nhs: (("council-housing", ARREARS, days),)})
        assert hub.alerts_of(nhs) == [raised], "a repeat within the cooldown was sent"
    suppressed = hub.metric(
        "placehub_alerts_total", rule="arrears-then-notice", outcome="suppressed"
    )
    assert suppressed >= 5


def demo_agreements(folder: Path) -> Path:
    """The demo's agreements (deploy/local), in force from a year ago to a year ahead of
    today instead of on their calendar dates, so the test never expires."""
    folder.mkdir()
    today = datetime.now(UTC).date()
    for path in (PROJECT_ROOT / "deploy/local/agreements").glob("*.yaml"):
        text = re.sub(
            r"(?m)^valid_from: .*$", f"valid_from: {today - timedelta(days=365)}", path.read_text()
        )
        text = re.sub(r"(?m)^valid_to: .*$", f"valid_to: {today + timedelta(days=365)}", text)
        (folder / path.name).write_text(text)
    return folder


def test_the_demo_place_makes_every_shipped_rule_fire(
    broker_settings: Settings, tmp_path: Path
) -> None:
    """make demo's place (seed 7, 200 people, 1,000 events) through the SDK, under the
    demo's agreements: every rule fires for someone, telling whom it should, and the police
    and children's services share under the safeguarding agreement (every event of theirs
    in a view, whether or not the person consented)."""
    worker = start_worker(broker_settings, tmp_path, demo_agreements(tmp_path / "agreements"))
    s = worker.settings
    registry = SchemaRegistry(s)
    serde = Serde(registry)
    shipped = {rule.code for rule in load_rules(PROJECT_ROOT / "deploy/local/alerts")}

    def fired() -> dict[str, list[Alert]]:
        by_rule: dict[str, list[Alert]] = {}
        for _, value, _ in read_topic(s, Topics(s.topic_prefix).alerts):
            if value is not None:
                alert = serde.decode(value, Alert)
                by_rule.setdefault(alert.rule_code, []).append(alert)
        return by_rule

    try:
        counts = Place(seed=7, people=200).publish(s, events=1000)
        wait_until(lambda: set(fired()) == shipped, timeout_s=120, describe=lambda: sorted(fired()))
        alerts = fired()
        told = {rule: {tuple(a.recipients) for a in alerts[rule]} for rule in alerts}
        assert told["sanction-then-food-bank"] == {("council-housing",)}
        assert told["concern-during-open-plan"] == {("council-early-help",)}
        for partner in ("city-police", "council-early-help"):
            wait_until(
                lambda p=partner: status(worker, p)["in_view"] == counts[p],
                describe=lambda p=partner: (status(worker, p), counts[p]),
            )
    finally:
        registry.close()
        worker.stop()
        drop_topics(s)
