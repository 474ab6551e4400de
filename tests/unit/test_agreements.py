"""Agreements as config: per-role field grants validated at load, and what they grant."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.agreements import ENTRY_FIELDS, load_agreements
from hub.config import PROJECT_ROOT
from hub.errors import ConfigError
from hub.users import Role

TODAY = datetime.now(UTC).date()
AGREEMENT = """\
id: dsa-1
title: Test agreement
partners: [council-housing, city-health]
event_types: ["housing.*"]
purposes: [early-help]
roles: [practitioner]
retention_days: 730
valid_from: {valid_from}
"""


def write(folder: Path, extra: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    text = AGREEMENT.format(valid_from=(TODAY - timedelta(days=1)).isoformat()) + extra
    (folder / "dsa-1.yaml").write_text(text)
    return folder


def test_without_fields_every_listed_role_sees_every_field(tmp_path: Path) -> None:
    agreement = load_agreements(write(tmp_path / "a")).by_id["dsa-1"]
    assert agreement.fields_for(Role.PRACTITIONER) == ENTRY_FIELDS
    assert agreement.fields_for(Role.STEWARD) == frozenset()  # not in roles


def test_fields_grant_each_role_its_own(tmp_path: Path) -> None:
    folder = write(tmp_path / "a", "fields:\n  practitioner: [event_type, occurred_at]\n")
    agreement = load_agreements(folder).by_id["dsa-1"]
    assert agreement.grants("city-health", Role.PRACTITIONER, "early-help", TODAY) == {
        "event_type",
        "occurred_at",
    }
    # Only signatories, for the agreement's purposes, while it is in force.
    assert agreement.grants("northfield-school", Role.PRACTITIONER, "early-help", TODAY) == set()
    assert agreement.grants("city-health", Role.PRACTITIONER, "marketing", TODAY) == set()
    before = TODAY - timedelta(days=2)
    assert agreement.grants("city-health", Role.PRACTITIONER, "early-help", before) == set()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "fields:\n  steward: [event_type]\n",
            "fields: Value error, role steward is given fields but is not in roles",
        ),
        ("fields:\n  practitioner: [event_type, nhs_number]\n", "fields.practitioner.1: Input"),
        ("fields:\n  janitor: [event_type]\n", "fields.janitor.[key]: Input"),
        ("fields: [event_type]\n", "fields: Input should be a valid dictionary"),
    ],
)
def test_bad_fields_are_rejected_naming_file_key_and_reason(
    tmp_path: Path, extra: str, message: str
) -> None:
    folder = write(tmp_path / "a", extra)
    with pytest.raises(ConfigError) as error:
        load_agreements(folder)
    # file:line: key: reason (the line of the key at fault)
    assert re.match(
        rf"{re.escape(str(folder / 'dsa-1.yaml'))}:\d+: {re.escape(message)}", str(error.value)
    )
    assert "nhs_number" not in str(error.value) or "nhs_number" in extra


def test_the_deployments_agreements_load() -> None:
    book = load_agreements(PROJECT_ROOT / "deploy" / "local" / "agreements")
    early_help = book.by_id["dsa-early-help-2026"]
    assert early_help.fields_for(Role.PRACTITIONER) == {
        "event_type",
        "partner_id",
        "occurred_at",
        "purpose",
    }
    assert early_help.fields_for(Role.ADMIN) == frozenset()
