"""Compatibility modes decided by the avro checker, with the breaking field named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hub.compatibility import Compatibility, incompatibilities
from hub.errors import InputError
from hub.schema_files import SCHEMA_DIR, load_schema


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "T", "namespace": "org.test", "fields": list(fields)}


def payload_branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    branches: list[dict[str, Any]] = payload["type"]
    return branches


V1 = load_schema("v1", SCHEMA_DIR / "history" / "PartnerEvent")
CURRENT = load_schema("PartnerEvent")


def test_adding_payload_families_is_backward_but_not_forward_compatible() -> None:
    assert len(payload_branches(V1)) == 3 < len(payload_branches(CURRENT))
    assert incompatibilities(CURRENT, [("v1", V1)], Compatibility.BACKWARD) == []
    forward = incompatibilities(CURRENT, [("v1", V1)], Compatibility.FORWARD)
    assert {p.field for p in forward} == {
        f"payload[{b['name']}]" for b in payload_branches(CURRENT)[3:]
    }
    assert all(p.direction == "old reads new" and "no union branch" in p.reason for p in forward)


def test_a_new_field_without_default_is_named_with_its_reason() -> None:
    broken = copy.deepcopy(CURRENT)
    payload_branches(broken)[0]["fields"].append({"name": "tenure", "type": "string"})
    [problem] = incompatibilities(broken, [("v2", CURRENT)], Compatibility.BACKWARD)
    assert problem.field == "payload[HousingEvent].tenure"
    assert "no default" in problem.reason
    assert str(problem).startswith("against v2 (new reads old): payload[HousingEvent].tenure")
    with_default = copy.deepcopy(CURRENT)
    payload_branches(with_default)[0]["fields"].append(
        {"name": "tenure", "type": ["null", "string"], "default": None}
    )
    assert incompatibilities(with_default, [("v2", CURRENT)], Compatibility.FULL) == []


def test_removing_an_enum_symbol_and_changing_a_type_are_reported() -> None:
    fewer = copy.deepcopy(CURRENT)
    payload_branches(fewer)[0]["fields"][0]["type"]["symbols"].remove("ARREARS")
    [problem] = incompatibilities(fewer, [("v2", CURRENT)], Compatibility.BACKWARD)
    assert problem.field == "payload[HousingEvent].kind"
    assert "missing enum symbols" in problem.reason and "ARREARS" in problem.reason
    retyped = copy.deepcopy(CURRENT)
    retyped["fields"][0]["type"] = "int"
    problems = incompatibilities(retyped, [("v2", CURRENT)], Compatibility.FULL)
    assert {(p.field, p.direction) for p in problems} == {
        ("event_id", "new reads old"),
        ("event_id", "old reads new"),
    }
    assert incompatibilities(retyped, [("v2", CURRENT)], Compatibility.NONE) == []


def test_transitive_modes_check_every_earlier_version_plain_ones_only_the_latest() -> None:
    v1 = record({"name": "a", "type": "int"})
    v2 = record()
    v3 = record({"name": "a", "type": "string", "default": ""})
    history = [("v1", v1), ("v2", v2)]
    assert incompatibilities(v3, history, Compatibility.BACKWARD) == []
    [problem] = incompatibilities(v3, history, Compatibility.BACKWARD_TRANSITIVE)
    assert (problem.against, problem.field) == ("v1", "a")
    assert "type mismatch" in problem.reason


def test_modes_parse_any_case_and_reject_others_by_name() -> None:
    assert Compatibility.parse("full_transitive") is Compatibility.FULL_TRANSITIVE
    assert Compatibility.FULL_TRANSITIVE.transitive and Compatibility.FULL.old_reads_new
    assert not Compatibility.BACKWARD.old_reads_new
    with pytest.raises(InputError, match="'SIDEWAYS' is not one of BACKWARD"):
        Compatibility.parse("SIDEWAYS")


def test_an_invalid_schema_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not a valid Avro schema"):
        incompatibilities(
            record({"name": "a", "type": "nope"}), [("v1", record())], Compatibility.BACKWARD
        )
