"""Example records generated from the schemas: for the catalogue, and to keep models honest.

``example(schema, variant)`` walks a schema and builds a record that uses every optional
field; successive variants step through every enum symbol and every union branch, so a
handful of them exercise all that a schema can say. Values that a schema alone cannot
make up (tokens, codes, ids) come from one table of realistic, synthetic values keyed by
field name: a new string field needs an entry here, which is also its documented example.
Records are in the shape fastavro reads (timestamps as datetimes; a record chosen from a
union of records as a ``(full name, fields)`` pair), which is what ``from_avro`` takes.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from hub.errors import ConfigError
from hub.models import payload_family

__all__ = ["WHEN", "avro_json", "example", "variant_count"]

WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
_NHS_TOKEN = "nhs:31A3-cctVYW98I-TYSYgUoHFQzVPk3UHd4QQ4_N_snM"
_COUNCIL_TOKEN = "council:KujnmlMtUQvHDNIOwlHE_6UChtZWUXt72ZcQY2_z6-U"
_EVENT_ID = "0f8c6a8e-5c1b-4f7e-9a43-6f2d1e3b7c90"

# Synthetic example values by field name (tokens are HMACs under a public example key).
_VALUES: dict[str, Any] = {
    "event_id": _EVENT_ID,
    "partner_id": "council-housing",
    "source_system": "northgate-housing",
    "source_ref": "HSG-0042",
    "event_type": "housing.arrears",  # replaced by the payload's own (see _derive)
    "tokens": [_NHS_TOKEN, _COUNCIL_TOKEN],
    "subject_tokens": [_NHS_TOKEN],
    "area_code": "E05000001",
    "consent_id": "c-1042",
    "agreement_id": "dsa-early-help",
    "purpose": "early-help",
    "purposes": ["early-help"],
    "sharing_partners": ["council-housing", "city-health", "northfield-school"],
    "link_id": "l-0077",
    "alert_id": "a-2026-0001",
    "person_id": "p-n62bzm7ly6hypqloy3bt",
    "rule_code": "housing-and-school-decline",
    "explanation": ["housing.arrears:BAND_1000_3000", "education.attendance:PCT_BELOW_80"],
    "event_ids": [_EVENT_ID],
    "partners": ["council-housing", "northfield-school"],
    "recipients": ["council-housing", "northfield-school"],
    "feedback_id": "f-0009",
    "practitioner_role": "housing-officer",
    "combination_code": "education+housing",
    "from_partner": "northfield-school",
    "to_partner": "early-help-hub",
    "reason": "/payload/kind: Input should be 'ARREARS', 'NOTICE_SERVED' or ...",
    "source_topic": "partner.council-housing.events",
    "source_partition": 0,
    "source_offset": 4211,
    "original": b"\x00\x00\x00\x00\x2a\x02",
    "original_bytes": 6,
    "original_truncated": False,
    "stage": "gate",
    "audit_id": "8d3e1c52-7b7a-4d0e-8f55-2f1a9c0b6e11",
    "actor": "u-housing-1",
    "role": "practitioner",
    "action": "person.read",
    "outcome": "ok",
    "owner": "council-housing",
    "owners": ["council-housing", "city-health"],
    "actor_partner": "city-health",
    "reason_code": "safeguarding-child",
    "granularity": "week",
    "measure": "co_occurrence",
    "rule": "counts under 5 suppressed, the rest rounded to the nearest 5",
    "count": 15,
    "suppressed": False,
    "window_start": WHEN - timedelta(days=7),
    "window_end": WHEN,
    "expires_at": WHEN + timedelta(days=365),
    "response_id": "3b9d2f64-1c0a-4e8e-9f1d-7a2c5e8b4d10",
    "title": "Housing advice at the school gate",
    "description": "Weekly housing advice sessions at two primary schools.",
    "area_codes": ["E05000001", "E05000002"],
    "from_date": WHEN.date() - timedelta(days=28),
    "until_date": WHEN.date() + timedelta(days=56),
    "recorded_by": "u-steward-1",
    "changed_by": "u-steward-1",
}


def example(schema: dict[str, Any], variant: int = 0) -> dict[str, Any]:
    """A valid record of ``schema`` using every optional field; ``variant`` picks symbols."""
    record = _value(schema, variant, "", {})
    assert isinstance(record, dict)
    return record


def variant_count(schema: dict[str, Any]) -> int:
    """How many variants it takes to use every enum symbol and union branch of ``schema``."""
    widths = [1]

    def walk(node: Any) -> None:
        if isinstance(node, list):
            widths.append(len([branch for branch in node if branch != "null"]))
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") == "enum":
                widths.append(len(node["symbols"]))
            for child in (node.get("fields") or []) + [node.get("type"), node.get("items")]:
                walk(child)

    walk(schema)
    return max(widths)


def avro_json(schema: dict[str, Any], record: dict[str, Any]) -> str:
    """``record`` in Avro's JSON encoding, as standard tools (e.g. console consumers) show it."""
    buffer = io.StringIO()
    fastavro.json_writer(buffer, fastavro.parse_schema(schema), [record])
    return json.dumps(json.loads(buffer.getvalue()), indent=2)


def _value(node: Any, variant: int, name: str, named: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return _union(node, variant, name, named)
    if isinstance(node, str):
        if node in named:
            return _value(named[node], variant, name, named)
        return _primitive(node, name)
    kind = node["type"]
    if kind == "record":
        named[node["name"]] = named[_full(node)] = node
        record = {
            field["name"]: _value(field["type"], variant, field["name"], named)
            for field in node["fields"]
        }
        return _derive(record)
    if kind == "enum":
        named[node["name"]] = named[_full(node)] = node
        return node["symbols"][variant % len(node["symbols"])]
    if kind == "array":
        if name in _VALUES:
            return list(_VALUES[name])
        return [_value(node["items"], variant, name, named)]
    if kind == "map":
        return {"key": _value(node["values"], variant, name, named)}
    if node.get("logicalType") == "timestamp-millis":
        return _VALUES.get(name, WHEN)
    return _value(kind, variant, name, named)


def _union(branches: list[Any], variant: int, name: str, named: dict[str, Any]) -> Any:
    chosen = [branch for branch in branches if branch != "null"]
    branch = chosen[variant % len(chosen)]
    value = _value(branch, variant, name, named)
    if len(chosen) > 1 and isinstance(branch, dict) and branch.get("type") == "record":
        return (_full(branch), value)
    return value


def _primitive(kind: str, name: str) -> Any:
    if name in _VALUES:
        return _VALUES[name]
    defaults: dict[str, Any] = {"boolean": True, "int": 3, "long": 3, "float": 0.5, "double": 0.5}
    if kind in defaults:
        return defaults[kind]
    raise ConfigError(f"no example value for {kind} field {name!r}: add one to hub/examples.py")


def _derive(record: dict[str, Any]) -> dict[str, Any]:
    """Fill fields that follow from others: an envelope's event_type from its payload, a
    pattern cell's median from its measure."""
    payload = record.get("payload")
    if "event_type" in record and isinstance(payload, tuple):
        branch, fields = payload
        record["event_type"] = f"{payload_family(branch)}.{fields['kind'].lower()}"
    if record.get("median_days") is not None and record.get("measure") != "median_days":
        record["median_days"] = None  # a pattern cell has a median only as a median cell
    return record


def _full(node: dict[str, Any]) -> str:
    namespace = node.get("namespace", "org.placehub")
    return f"{namespace}.{node['name']}"
