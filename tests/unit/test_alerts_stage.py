"""The alerts stage with plain dicts: the view sends changed timelines; the stage raises,
suppresses, escalates and erases alerts with the place's shipped rules."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from hub import batch
from hub.alerts import load_rules
from hub.batch import Op
from hub.config import PROJECT_ROOT
from hub.models import (
    Alert,
    CareService,
    HealthEvent,
    HealthKind,
    PoliceEvent,
    PoliceKind,
    SocialCareEvent,
    SocialCareKind,
)
from hub.stages.alerts import AlertsStage, recipients_for
from hub.stages.view import TimelineEntry, ViewStage, entry_for
from tests.unit import factories
from tests.unit.test_stages import (
    CTX,
    PERSON,
    SERDE,
    event_item,
    items_on,
    record,
    run,
    view_record,
    written,
)

RULES = load_rules(PROJECT_ROOT / "deploy" / "local" / "alerts")
ALERTS_CTX = dataclasses.replace(CTX, rules=RULES)
KEY = PERSON.encode()
PARTITION = batch.partition_for(KEY, CTX.partitions)
AE = HealthEvent(kind=HealthKind.AE_ATTENDANCE)


def attendance(days_ago: float, partner: str = "city-health") -> dict[str, Any]:
    """One A&E attendance as the view sends it (no tokens, no sources)."""
    event = factories.event(
        partner_id=partner, payload=AE, occurred_at=factories.WHEN - timedelta(days=days_ago)
    )
    entry = entry_for(event, f"partner.{partner}.events:0:1")
    return entry.model_dump(mode="json", exclude={"tokens", "sources"})


def timeline(entries: list[dict[str, Any]], offset: int = 0) -> Any:
    item = batch.Item(Op.TIMELINE, PERSON, raw=json.dumps(entries).encode())
    return record(ALERTS_CTX.internal.alerts, batch.encode([item]), offset, PARTITION)


def alerts_out(effects: Any) -> list[tuple[bytes, Alert | None]]:
    return [
        (o.key, SERDE.decode(o.value, Alert) if o.value is not None else None)
        for o in effects.outputs
        if o.topic == CTX.topics.alerts
    ]


NOW_ISH = factories.WHEN + timedelta(hours=1)  # test_stages.run's clock


def test_the_view_sends_each_changed_persons_timeline_only_when_the_place_has_rules() -> None:
    event = factories.event(payload=AE, partner_id="city-health")
    effects, _ = run(ViewStage(ALERTS_CTX), [view_record([event_item(event, "s1")])])
    (sent,) = items_on(effects, ALERTS_CTX.internal.alerts)
    assert (sent.op, sent.key) == (Op.TIMELINE, PERSON)
    (entry,) = json.loads(sent.raw or b"")
    assert entry["event_type"] == "health.ae_attendance" and "tokens" not in entry
    effects, _ = run(ViewStage(CTX), [view_record([event_item(event, "s1")])])
    assert items_on(effects, ALERTS_CTX.internal.alerts) == []  # no rules, nothing sent


def test_a_rule_fires_once_is_suppressed_on_a_repeat_and_escalates_when_stronger() -> None:
    three = [attendance(d) for d in (1, 5, 9)]
    effects, state = run(AlertsStage(ALERTS_CTX), [timeline(three[:2])])
    assert alerts_out(effects) == []  # two attendances: a near miss
    effects, state = run(AlertsStage(ALERTS_CTX), [timeline(three)])
    ((key, alert),) = alerts_out(effects)
    assert alert is not None and alert.rule_code == "repeat-ae-attendance"
    assert key == alert.alert_id.encode() and alert.person_id == PERSON
    assert alert.explanation == ["health.ae_attendance"] and alert.recipients == ["city-health"]
    assert sorted(alert.event_ids) == sorted(e["event_id"] for e in three)
    row = written(state, "alerts")[KEY]["alerts"][0]
    assert row["refs"] == {"city-health": ["HSG-0042"]} and "source_ref" not in row["events"][0]
    assert effects.metrics[("placehub_alerts", ("repeat-ae-attendance", "new"))] == 1

    tables = {"alerts": written(state, "alerts")}
    effects, _ = run(AlertsStage(ALERTS_CTX), [timeline(three)], **tables)
    assert alerts_out(effects) == []  # the same picture again, within the cooldown
    four = [*three, attendance(12, "city-gp-federation")]
    effects, state = run(AlertsStage(ALERTS_CTX), [timeline(four)], **tables)
    escalations = [a for _, a in alerts_out(effects) if a and a.rule_code == "repeat-ae-attendance"]
    assert [a.alert_id for a in escalations] == [alert.alert_id]  # the same alert, stronger
    assert len(escalations[0].event_ids) == 4


def test_an_alert_whose_event_left_the_timeline_is_erased() -> None:
    three = [attendance(d) for d in (1, 5, 9)]
    _, state = run(AlertsStage(ALERTS_CTX), [timeline(three)])
    (row,) = written(state, "alerts")[KEY]["alerts"]
    effects, state = run(
        AlertsStage(ALERTS_CTX), [timeline(three[1:])], alerts=written(state, "alerts")
    )
    assert alerts_out(effects) == [(row["alert_id"].encode(), None)]  # a tombstone
    assert [a.action for a in effects.audits] == ["alert.erase"]
    assert written(state, "alerts") == {KEY: None}
    effects, state = run(AlertsStage(ALERTS_CTX), [timeline([])], alerts={})
    assert effects.outputs == [] and written(state, "alerts") == {}


def test_a_rule_for_the_lead_partner_tells_the_one_holding_an_open_plan() -> None:
    opened = SocialCareEvent(kind=SocialCareKind.PLAN_OPENED, service=CareService.EARLY_HELP)
    plan = factories.event(
        partner_id="council-housing",
        payload=opened,
        occurred_at=factories.WHEN - timedelta(days=20),
    )
    entries = [entry_for(plan, "s").model_dump(mode="json", exclude={"tokens", "sources"})]
    rule = next(r for r in RULES if r.recipients.kind == "lead")
    assert rule.code == "concern-during-open-plan"
    timeline_entries = [TimelineEntry.model_validate(e | {"tokens": []}) for e in entries]
    assert recipients_for(rule, timeline_entries, factories.WHEN) == ["council-housing"]


def test_the_lead_told_is_the_one_holding_the_plan_when_the_concern_came() -> None:
    """The plan closed after the police concern (all three in one timeline, as when they
    arrive in one batch): the alert still tells only the partner whose plan was open when
    the concern came, never every partner involved with the person."""
    care = CareService.EARLY_HELP
    steps = [
        ("council-early-help", SocialCareEvent(kind=SocialCareKind.PLAN_OPENED, service=care), 30),
        ("city-police", PoliceEvent(kind=PoliceKind.WELFARE_CONCERN), 20),
        ("council-early-help", SocialCareEvent(kind=SocialCareKind.PLAN_CLOSED, service=care), 10),
        ("city-health", AE, 5),
    ]
    entries = [
        entry_for(
            factories.event(
                partner_id=p, payload=body, occurred_at=factories.WHEN - timedelta(days=d)
            ),
            f"s{d}",
        ).model_dump(mode="json", exclude={"tokens", "sources"})
        for p, body, d in steps
    ]
    effects, _ = run(AlertsStage(ALERTS_CTX), [timeline(entries)])
    told = {a.rule_code: a.recipients for _, a in alerts_out(effects) if a is not None}
    assert told["concern-during-open-plan"] == ["council-early-help"]
