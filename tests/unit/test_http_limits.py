"""The HTTP edge's body rules: bounded, UTF-8-only JSON, and errors that echo no value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hub._http import JsonLimits, RequestRefused, check_content_type, parse_json
from hub.ingest import WireEvent, wire_errors

LIMITS = JsonLimits(max_depth=32, max_values=1_000)


@pytest.mark.parametrize(
    ("body", "status", "rule"),
    [
        (b"[" * 10_000 + b"]" * 10_000, 400, "nested deeper than 32 levels"),
        (b"1" * 5_000, 400, "integer outside the 64-bit range"),
        (str(2**64).encode(), 400, "integer outside the 64-bit range"),
        (str(-(2**63) - 1).encode(), 400, "integer outside the 64-bit range"),
        (b"0." + b"1" * 200, 400, "longer than 100 characters"),
        (b"1e400", 400, "out of range"),
        (b"[NaN]", 400, "NaN or Infinity"),
        (json.dumps({"a": 1}).encode("utf-16"), 415, "UTF-8"),
        (json.dumps({"a": 1}).encode("utf-16-le"), 415, "UTF-8"),
        (json.dumps({"a": 1}).encode("utf-32-be"), 415, "UTF-8"),
        (b'{"a": "\xff"}', 400, "not UTF-8"),
        (b"{not json", 400, "not valid JSON at line 1 column 2"),
        (json.dumps(list(range(2_000))).encode(), 413, "more than 1000 JSON values"),
    ],
)
def test_hostile_bodies_are_refused_by_rule(body: bytes, status: int, rule: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        parse_json(body, LIMITS)
    assert refused.value.status == status and rule in refused.value.title


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, -(2**63), 2**64 - 1, None, True, "x"]},
        {"text": "[[[[[[[[[[" * 10 + '\\"{{{{'},  # brackets in strings are not nesting
        [[[[[]]]]],
    ],
)
def test_bodies_within_the_limits_parse_as_json_does(value: Any) -> None:
    assert parse_json(json.dumps(value).encode(), LIMITS) == value


@pytest.mark.parametrize(
    ("header", "refused"),
    [
        (None, False),
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("application/vnd.schemaregistry.v1+json", False),
        ("application/json; charset=utf-16", True),
        ("application/json; charset=latin-1", True),
    ],
)
def test_only_utf8_charsets_are_accepted(header: str | None, refused: bool) -> None:
    if refused:
        with pytest.raises(RequestRefused) as caught:
            check_content_type(header, require_json=False)
        assert caught.value.status == 415 and "UTF-8" in caught.value.title
    else:
        check_content_type(header, require_json=False)


def _wire(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "source_system": "emis-health",
        "source_ref": "RX1-778",
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": {"tokens": ["nhs:" + "A" * 43]},
        "payload": {"family": "health", "kind": "AE_ATTENDANCE"},
    }
    event.update(changes)
    return event


def _errors(item: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        WireEvent.model_validate(item)
    return wire_errors(caught.value, item)


def test_unknown_keys_are_named_by_position_not_echoed() -> None:
    item = _wire(subject={"tokens": ["nhs:" + "A" * 43], "9434765919": "x"})
    errors = _errors(item)
    assert [pointer for pointer, _ in errors] == ["/subject/<key 1>"]
    assert "9434765919" not in json.dumps(errors)


def test_no_value_of_the_item_comes_back_in_a_message() -> None:
    secret = "JANE SMITH 1980-02-01 AB1 2CD"
    item = _wire(event_type=secret * 30_000, source_system=secret, occurred_at=secret)
    errors = _errors(item)
    assert {pointer for pointer, _ in errors} == {"/event_type", "/occurred_at"}
    assert "JANE" not in json.dumps(errors)
