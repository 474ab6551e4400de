"""``placehub schemas register|list`` against the real broker's ``_schemas`` topic."""

from __future__ import annotations

import json

import pytest

from hub.cli import main
from hub.config import Settings, load_settings
from hub.contracts import load_contracts
from hub.partners import load_partners
from hub.registry import SchemaRegistry


def test_register_puts_every_contract_under_its_subjects_with_its_mode(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLACEHUB_TOPIC_PREFIX", hub_settings.topic_prefix)
    monkeypatch.setenv("PLACEHUB_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    load_settings.cache_clear()
    try:
        assert main(["schemas", "register", "--json"]) == 0
        registered = json.loads(capsys.readouterr().out)
        assert main(["schemas", "register", "--json"]) == 0  # idempotent
        assert json.loads(capsys.readouterr().out) == registered
        assert main(["schemas", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
    finally:
        load_settings.cache_clear()

    prefix = hub_settings.topic_prefix
    subjects = {entry["subject"] for entry in registered}
    assert {entry["subject"] for entry in listed} == subjects
    assert {f"{prefix}partner.{p}.events-value" for p in ("council-housing", "city-health")} <= (
        subjects
    )
    partners = load_partners(hub_settings.partners_file)
    # The catalogue names each partner topic (events, links) once; each declared partner
    # has its own subject of each.
    topics = [t for c in load_contracts() for t in c.topics]
    per_partner = sum("{partner}" in t for t in topics)
    assert per_partner == 2
    assert len(subjects) == len(topics) + per_partner * (len(partners) - 1)
    assert f"{prefix}partner.city-health.links-value" in subjects
    registry = SchemaRegistry(hub_settings)
    try:
        for contract in load_contracts():  # each subject under its contract's own mode
            for topic in (t for t in contract.topics if "{partner}" not in t):
                mode = registry.compatibility(f"{prefix}{topic}-value")
                assert mode == contract.compatibility, (topic, mode)
    finally:
        registry.close()
