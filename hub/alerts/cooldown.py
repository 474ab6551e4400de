"""One open alert per rule per person: whether a new match is a new alert, an escalation
of the open one, or suppressed, so practitioners are not told the same thing twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from hub.alerts.evaluate import Match
from hub.alerts.rules import Rule

__all__ = ["Decision", "OpenAlert", "decide"]


class Decision(StrEnum):
    NEW = "NEW"  # no open alert, or the open one's cooldown is over
    SUPPRESSED = "SUPPRESSED"  # within the cooldown and no stronger than the open one
    ESCALATED = "ESCALATED"  # stronger than the open one (more events, partners, domains)


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """What de-duplication needs of the open alert for (rule, person)."""

    created_at: datetime
    strength: int


def decide(rule: Rule, open_alert: OpenAlert | None, match: Match, now: datetime) -> Decision:
    """What to do with ``match`` given the open alert of the same rule for the same person.
    A stronger match escalates at any time; an equal or weaker one is a new alert only
    once ``cooldown_days`` have passed since the open one was created. The caller keeps
    the alert it raises (new or escalated) as the open one."""
    if open_alert is None:
        return Decision.NEW
    if match.strength > open_alert.strength:
        return Decision.ESCALATED
    if now - open_alert.created_at >= timedelta(days=rule.cooldown_days):
        return Decision.NEW
    return Decision.SUPPRESSED
