"""Who is told of an alert a rule sends to one team of a partner (``alerts_api.told``):
only that partner's practitioners in that team; a rule naming no team tells the partner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.access import Bases, Reader
from hub.agreements import AgreementBook
from hub.alerts_api import inbox_items, told
from hub.users import Role

HOUSING = "council-housing"
MONEY = Reader("kim.money", Role.PRACTITIONER, HOUSING, "financial-inclusion")
TENANCY = Reader("alex.housing", Role.PRACTITIONER, HOUSING)
OTHER_TEAM = Reader("lou.rent", Role.PRACTITIONER, HOUSING, "rents")
FOOD_BANK = Reader("mo.food", Role.PRACTITIONER, "city-food-bank", "financial-inclusion")


def row(team: str | None) -> dict[str, Any]:
    return {
        "alert_id": "a-1",
        "rule": "sanction-then-food-bank",
        "severity": "MEDIUM",
        "purpose": "early-help",
        "created_at": "2026-11-03T14:05:00+00:00",
        "raised_at": "2026-11-03T14:05:00+00:00",
        "recipients": [HOUSING],
        "team": team,
        "events": [],
        "refs": {HOUSING: ["REF-1"]},
    }


def test_an_alert_for_a_team_is_told_to_that_team_of_that_partner_only() -> None:
    for_team = row("financial-inclusion")
    assert told(for_team, MONEY)
    assert not told(for_team, TENANCY)  # no team
    assert not told(for_team, OTHER_TEAM)
    assert not told(for_team, FOOD_BANK)  # the same team name at another partner


def test_an_alert_naming_no_team_is_told_to_the_whole_partner() -> None:
    for reader in (MONEY, TENANCY, OTHER_TEAM):
        assert told(row(None), reader)
    old_row = {k: v for k, v in row(None).items() if k != "team"}  # kept before teams
    assert told(old_row, TENANCY)
    assert not told(row(None), FOOD_BANK)


def test_the_inbox_lists_a_team_alert_only_for_the_team() -> None:
    bases = Bases(AgreementBook([]), lambda cid: None, datetime.now(UTC))
    stored = [row("financial-inclusion")]
    assert [a["alert_id"] for a in inbox_items(stored, "p-1", MONEY, bases)] == ["a-1"]
    assert inbox_items(stored, "p-1", TENANCY, bases) == []
