"""Alerts: the place's rules (``hub.alerts``) over each person's timeline as it changes.

After every batch that changed a person's view, the view stage sends the person's
timeline (codes, dates, partners, bases and source refs; no tokens) on the internal alerts
topic, on the person's partition. This stage keeps each person's alerts in the ``alerts``
table and, for each timeline:

- **erase**: an alert built on an event the timeline no longer holds (its basis withdrawn
  or expired, or the event gone to another person with a split or merge) is erased: it
  leaves the table, a tombstone keyed by its id goes to ``hub.alerts`` (compacted), and the
  erasure is audited (``alert.erase``);
- **raise**: each rule that holds is decided against the rule's open alert for the person
  (``hub.alerts.decide``): a new alert, or an escalation of the open one (same id, new
  facts), goes to ``hub.alerts`` with its explanation (the types, partners and dates of
  the events behind it) and its recipients, and is kept; a repeat within the cooldown
  that is no stronger is suppressed. Each outcome is counted by rule.

Rules only ask for "at least" this many events, partners or domains, so a rule can start
to hold only when an event arrives: a changed timeline is the only moment one can fire.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from hub import batch
from hub.alerts import Decision, Match, OpenAlert, Rule, decide, evaluate_book
from hub.batch import Op
from hub.models import Alert
from hub.stages.context import Context
from hub.stages.effects import Effects, Output, Record, Refused, State, audit_record, run_each
from hub.stages.hops import each_item
from hub.stages.view import TimelineEntry, lead_partners

__all__ = ["MAX_ALERTS", "AlertsStage", "recipients_for"]

MAX_ALERTS = 100  # kept per person (the oldest go first): bounds the table row
_REFS = 20  # a recipient's own source refs kept on an alert
_IDS = uuid.UUID("6f3f0b8e-8a51-4c7e-9a55-0c6f7a1c2b3d")  # namespace of alert ids


class AlertsStage:
    """Raises, escalates and erases alerts as people's timelines change (module docstring)."""

    name = "alerts"
    tables: tuple[str, ...] = ("alerts",)
    writes: tuple[tuple[str, ...], ...] = (("alerts",),)  # after the alerts they record

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply the rules to each timeline in ``records``, in order per person."""
        effects = Effects()

        def handle(item: batch.Item) -> None:
            if item.op is not Op.TIMELINE:
                raise Refused(f"the alerts stage has no operation {item.op!r}")
            entries = [
                TimelineEntry.model_validate(e | {"tokens": []})
                for e in orjson.loads(item.raw or b"[]")
            ]
            key = item.key.encode()
            state.at(batch.partition_for(key, self.ctx.partitions))
            kept = _Person(
                self, item.key, (state["alerts"].get(key) or {}).get("alerts", []), effects, now
            )
            kept.erase_unheld(entries)
            for match in evaluate_book(self.ctx.rules, entries, now):
                rule = self.ctx.rules.get(match.rule_code)
                assert rule is not None
                kept.raise_(rule, match, entries)
            if kept.changed and kept.alerts:
                state["alerts"][key] = {"alerts": kept.alerts}
            elif kept.changed:
                state["alerts"].pop(key, None)

        def one(record: Record) -> None:
            def refused(item: batch.Item, reason: str) -> None:
                effects.dead_letter(record, self.name, reason, now)

            each_item(self.name, record, state, effects, handle, refused)

        run_each(self.name, records, state, effects, now, one)
        return effects


class _Person:
    """One person's alerts while a timeline is applied."""

    def __init__(
        self,
        stage: AlertsStage,
        person_id: str,
        alerts: list[dict[str, Any]],
        effects: Effects,
        now: datetime,
    ) -> None:
        self.ctx, self.person_id, self.effects, self.now = stage.ctx, person_id, effects, now
        self.alerts = list(alerts)
        self.changed = False

    def erase_unheld(self, entries: list[TimelineEntry]) -> None:
        """Erase the alerts built on an event ``entries`` no longer hold."""
        held = {(e.partner_id, e.event_id) for e in entries}
        for alert in list(self.alerts):
            if not all((e["partner_id"], e["event_id"]) in held for e in alert["events"]):
                self._erase(alert)

    def raise_(self, rule: Rule, match: Match, entries: list[TimelineEntry]) -> None:
        """Decide ``match`` against the rule's open alert; send and keep what it raises."""
        open_ = next((a for a in reversed(self.alerts) if a["rule"] == rule.code), None)
        known = (
            OpenAlert(datetime.fromisoformat(open_["created_at"]), open_["strength"])
            if open_
            else None
        )
        decision = decide(rule, known, match, self.now)
        self.effects.count("placehub_alerts", rule.code, decision.value.lower())
        if decision is Decision.SUPPRESSED:
            return
        if decision is Decision.ESCALATED and open_ is not None:
            self.alerts.remove(open_)
            alert_id, created_at = open_["alert_id"], open_["created_at"]
        else:
            alert_id = str(uuid.uuid5(_IDS, f"{self.person_id}|{rule.code}|{self.now.isoformat()}"))
            created_at = self.now.isoformat()
        by_id = {(e.partner_id, e.event_id): e for e in entries}
        events = [by_id[o.partner_id, o.event_id] for o in match.events]
        recipients = recipients_for(rule, entries, match.events[-1].occurred_at)
        row = {
            "alert_id": alert_id,
            "rule": rule.code,
            "severity": rule.severity.value,
            "purpose": rule.purpose,
            "strength": match.strength,
            "created_at": created_at,
            "raised_at": self.now.isoformat(),
            "recipients": recipients,
            "team": rule.recipients.team,  # only that team of the named partner is told
            "events": [
                e.model_dump(mode="json", exclude={"tokens", "sources", "source_ref"})
                for e in events
            ],
            "refs": {p: _refs(p, entries) for p in recipients},
        }
        self.alerts.append(row)
        while len(self.alerts) > MAX_ALERTS:
            self._erase(self.alerts[0])
        self.changed = True
        self._send(row, match)

    def _send(self, row: dict[str, Any], match: Match) -> None:
        alert = Alert(
            alert_id=row["alert_id"],
            person_id=self.person_id,
            rule_code=row["rule"],
            severity=row["severity"],
            explanation=match.explanation,
            event_ids=match.event_ids,
            partners=match.partners,
            created_at=datetime.fromisoformat(row["raised_at"]),
            recipients=row["recipients"],
        )
        topic = self.ctx.topics.alerts
        value = self.ctx.serde.encode(alert, f"{topic}-value")
        self.effects.outputs.append(self._output(row["alert_id"], value))

    def _erase(self, alert: dict[str, Any]) -> None:
        self.alerts.remove(alert)
        self.changed = True
        self.effects.outputs.append(self._output(alert["alert_id"], None))
        self.effects.audits.append(audit_record("alert.erase", self.person_id, self.now))
        self.effects.count("placehub_alerts", alert["rule"], "erased")

    def _output(self, alert_id: str, value: bytes | None) -> Output:
        key = alert_id.encode()
        partition = batch.partition_for(key, self.ctx.partitions)
        return Output(self.ctx.topics.alerts, partition, key, value)


def recipients_for(rule: Rule, entries: list[TimelineEntry], as_of: datetime) -> list[str]:
    """The partners told: those involved with the person, the lead partner (the one
    holding an open plan at ``as_of``, the match's last event; the involved ones if none
    does), or the rule's named partner (of which only the rule's team, if it names one:
    the row's ``team``). The lead is taken as of the match, not of the whole timeline: a
    plan closed after the concern must not widen the alert to every partner involved."""
    involved = sorted({e.partner_id for e in entries})
    if rule.recipients.kind == "partner":
        assert rule.recipients.partner is not None
        return [rule.recipients.partner]
    if rule.recipients.kind == "lead":
        return lead_partners(e for e in entries if e.occurred_at <= as_of) or involved
    return involved


def _refs(partner: str, entries: list[TimelineEntry]) -> list[str]:
    """``partner``'s own source refs for the person (its records in its own system)."""
    return sorted({e.source_ref for e in entries if e.partner_id == partner})[:_REFS]
