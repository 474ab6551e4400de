"""``placehub schemas check``: every schema honours its declared mode against its history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub.cli import main
from hub.contracts import check, history, load_contracts
from hub.schema_files import SCHEMA_DIR


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    """A private copy of the repository's schemas folder, to break on purpose."""
    return Path(shutil.copytree(SCHEMA_DIR, tmp_path / "schemas"))


def edit(path: Path, change: object) -> None:
    schema = json.loads(path.read_text())
    change(schema)  # type: ignore[operator]
    path.write_text(json.dumps(schema))


def test_the_repository_catalogue_passes_and_declares_every_schema() -> None:
    assert check() == []
    names = {contract.name for contract in load_contracts()}
    assert names == {path.stem for path in SCHEMA_DIR.glob("*.avsc")}
    assert {"Alert", "AlertFeedback", "PatternCell", "IdentityLink"} <= names


def test_partner_event_keeps_its_first_version_and_grew_compatibly() -> None:
    versions = history("PartnerEvent")
    assert [label for label, _ in versions][:2] == ["v1", "v2"]
    v1_payload = next(f for f in versions[0][1]["fields"] if f["name"] == "payload")
    assert [b["name"] for b in v1_payload["type"]] == [
        "HousingEvent",
        "EducationEvent",
        "HealthEvent",
    ]


def test_a_breaking_change_fails_naming_the_field_and_reason(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_required_field(schema: dict) -> None:  # type: ignore[type-arg]
        schema["fields"][-1]["type"][1]["fields"].append({"name": "term", "type": "int"})

    edit(schemas / "PartnerEvent.avsc", add_required_field)
    shutil.copy(schemas / "PartnerEvent.avsc", schemas / "history" / "PartnerEvent" / "v3.avsc")
    findings = check(schemas)
    assert len(findings) == 2  # against v1 and against v2: CI checks every earlier version
    assert [str(f) for f in findings] == [
        f"PartnerEvent: breaks BACKWARD against {version} (new reads old): "
        "payload[EducationEvent].term: field is missing in the writer's schema and has no default"
        for version in ("v1", "v2")
    ]


def test_an_unrecorded_change_undeclared_schema_and_history_gap_are_findings(
    schemas: Path,
) -> None:
    edit(schemas / "PatternCell.avsc", lambda s: s.update(doc="changed"))
    shutil.copy(schemas / "PatternCell.avsc", schemas / "Extra.avsc")
    shutil.copy(schemas / "PatternCell.avsc", schemas / "history" / "AlertFeedback" / "v4.avsc")
    problems = {str(f) for f in check(schemas)}
    assert "Extra: Extra.avsc is not declared in catalogue.yaml" in problems
    assert any(
        p.startswith("PatternCell: PatternCell.avsc differs from its latest recorded version v3")
        for p in problems
    )
    assert any(p.startswith("AlertFeedback:") and "without gaps" in p for p in problems)


def test_the_cli_reports_as_json_and_fails_on_findings(
    schemas: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    (schemas / "history" / "ConsentRecord" / "v1.avsc").unlink()
    monkeypatch.setattr("hub.cli.contracts.check", lambda: check(schemas))
    assert main(["schemas", "check", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == [
        {
            "schema": "ConsentRecord",
            "problem": "no history: record it as history/ConsentRecord/v1.avsc",
        }
    ]
    assert main(["schemas", "check"]) == 1
    assert "ConsentRecord: no history" in capsys.readouterr().err
