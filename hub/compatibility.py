"""Schema evolution rules: which changes a compatibility mode allows, decided by ``avro``.

The verdict on a reader/writer pair is always the ``avro`` package's
``ReaderWriterCompatibilityChecker`` (the Java checker's Python port). That checker reports
its findings as unordered sets, so to name the field that breaks we walk down matching
records and unions and ask the same checker about each sub-pair: the deepest pair it still
finds incompatible is where the break is, and its message is the reason.

Modes follow the Confluent Schema Registry: BACKWARD (the new schema reads data written
with the old one), FORWARD (old readers read new data), FULL (both); the ``_TRANSITIVE``
forms hold against every earlier version, the plain forms against the latest; NONE checks
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    lookup_writer_field,
)
from avro.schema import RecordSchema, UnionSchema

from hub.errors import InputError

__all__ = ["Compatibility", "Incompatibility", "incompatibilities", "reader_problems"]


class Compatibility(StrEnum):
    """A subject's compatibility mode, as the Confluent Schema Registry names them."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: object) -> Compatibility:
        """The mode named by ``value`` (any case); InputError listing the valid ones if not."""
        try:
            return cls(str(value).upper())
        except ValueError:
            valid = ", ".join(mode.value for mode in cls)
            raise InputError(f"compatibility level {value!r} is not one of {valid}") from None

    @property
    def transitive(self) -> bool:
        """True if the new schema must hold against every earlier version, not just the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def new_reads_old(self) -> bool:
        """True if consumers on the new schema must read data written with earlier ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def old_reads_new(self) -> bool:
        """True if consumers on earlier schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True)
class Incompatibility:
    """One way a new schema breaks its mode against one earlier version."""

    against: str  # the earlier version, e.g. 'v2' or 'version 3'
    direction: str  # 'new reads old' or 'old reads new'
    field: str  # dotted path; union branches in brackets, e.g. 'payload[HousingEvent].kind'
    reason: str

    def __str__(self) -> str:
        where = self.field or "(the record itself)"
        return f"against {self.against} ({self.direction}): {where}: {self.reason}"


def parse(schema: dict[str, Any]) -> avro.schema.Schema:
    """The ``avro`` package's parse of a schema dict; InputError naming the problem if invalid."""
    try:
        return avro.schema.parse(json.dumps(schema))
    except (avro.errors.AvroException, ValueError, TypeError) as exc:
        raise InputError(f"not a valid Avro schema: {exc}") from None


def incompatibilities(
    new: dict[str, Any], earlier: Sequence[tuple[str, dict[str, Any]]], mode: Compatibility
) -> list[Incompatibility]:
    """How ``new`` breaks ``mode`` against ``earlier`` ((label, schema), oldest first).

    Non-transitive modes look only at the last of ``earlier``; the caller passes the
    versions that count (e.g. only those not soft-deleted).
    """
    if mode is Compatibility.NONE or not earlier:
        return []
    against = earlier if mode.transitive else earlier[-1:]
    new_parsed = parse(new)
    found: list[Incompatibility] = []
    for label, old in against:
        old_parsed = parse(old)
        if mode.new_reads_old:
            found += [
                Incompatibility(label, "new reads old", field, reason)
                for field, reason in reader_problems(new_parsed, old_parsed)
            ]
        if mode.old_reads_new:
            found += [
                Incompatibility(label, "old reads new", field, reason)
                for field, reason in reader_problems(old_parsed, new_parsed)
            ]
    return found


def reader_problems(
    reader: avro.schema.Schema, writer: avro.schema.Schema
) -> list[tuple[str, str]]:
    """(field path, reason) for each place ``reader`` cannot read what ``writer`` wrote."""
    return _localise(reader, writer, "")


def _compatible(reader: avro.schema.Schema, writer: avro.schema.Schema) -> tuple[bool, str]:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    ok = result.compatibility is SchemaCompatibilityType.compatible
    kinds = sorted({kind.value.replace("_", " ") for kind in result.incompatibilities})
    return ok, f"{', '.join(kinds)}: {'; '.join(sorted(result.messages))}"


def _localise(
    reader: avro.schema.Schema, writer: avro.schema.Schema, path: str
) -> list[tuple[str, str]]:
    ok, reason = _compatible(reader, writer)
    if ok:
        return []
    found: list[tuple[str, str]] = []
    if isinstance(reader, RecordSchema) and isinstance(writer, RecordSchema):
        if reader.name == writer.name:
            found = _localise_fields(reader, writer, path)
    elif isinstance(writer, UnionSchema):
        for branch in writer.schemas:
            match = _reader_branch(reader, branch)
            where = f"{path}[{_branch_name(branch)}]"
            if match is None:
                found.append((where, "the reader has no union branch for the writer's type"))
            else:
                found += _localise(match, branch, where)
    return found or [(path, reason)]


def _localise_fields(
    reader: RecordSchema, writer: RecordSchema, path: str
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for field in reader.fields:
        where = f"{path}.{field.name}" if path else field.name
        writer_field = lookup_writer_field(writer_schema=writer, reader_field=field)
        if writer_field is not None:
            found += _localise(field.type, writer_field.type, where)
        elif not field.has_default:
            found.append((where, "field is missing in the writer's schema and has no default"))
    return found


def _branch_name(schema: avro.schema.Schema) -> str:
    return str(getattr(schema, "name", None) or schema.type)


def _reader_branch(
    reader: avro.schema.Schema, writer_branch: avro.schema.Schema
) -> avro.schema.Schema | None:
    """The reader schema that will read ``writer_branch``: its same-named union branch."""
    candidates = reader.schemas if isinstance(reader, UnionSchema) else [reader]
    for candidate in candidates:
        same_name = _branch_name(candidate) == _branch_name(writer_branch)
        if candidate.type == writer_branch.type and same_name:
            return candidate
    for candidate in candidates:
        if _compatible(candidate, writer_branch)[0]:
            return candidate
    return None
