"""Mappings: how a partner's columns (a CSV file's or a SQL query's) become an event draft.

A mapping is a YAML file validated at load (errors name the file, the key and the reason).
Each target field of the draft takes either a fixed ``value`` or a ``column``, optionally
through a ``map`` of the partner's codes to the contract's codes and a date ``format``::

    source_system: sims-education
    timezone: Europe/London          # for dates and times written without an offset
    csv: {encoding: latin-1, delimiter: ";"}
    fields:
      source_ref: PupilId            # shorthand for {column: PupilId}
      occurred_at: {column: Date, format: "%d/%m/%Y"}
      identifiers.upn: UPN
      identifiers.nhs: {column: NHS, optional: true}
      basis.kind: {value: CONSENT}
      basis.consent_id: ConsentRef
      basis.purpose: {value: early-help}
      payload.family: {value: education}
      payload.kind: {column: Type, map: {Att: ATTENDANCE, Susp: SUSPENSION}}
    person_key: {given_name: First, family_name: Last, born: DOB, postcode: Postcode,
                 born_format: "%d/%m/%Y"}

Rejection reasons name the line's column and the target field, never the cell's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from connectors.pseudonymise import IdentifierError, person_key
from connectors.publisher import EventDraft
from hub.config_files import load_config_file
from hub.errors import EventRejected

__all__ = ["ColumnSpec", "CsvOptions", "EventMapping", "PersonKeySpec"]

# Encodings whose line breaks are the byte b"\n", so a file can be read line by line.
ENCODINGS = ("utf-8", "latin-1", "cp1252", "ascii")
_SCALAR_TARGETS = {"source_ref", "occurred_at", "area_code", "age_band"}
_BASIS_FIELDS = {"kind", "consent_id", "agreement_id", "purpose"}
_SCHEMES = {"nhs", "upn", "council"}
# Pointers the publisher reports on the wire event, and the draft field they come from.
_ALIASES = {"/subject/area_code": "/area_code", "/subject/age_band": "/age_band"}


def _column_shorthand(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


class ColumnSpec(BaseModel):
    """Where one target field comes from: a fixed value or a column (mapped, parsed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = Field(default=None, min_length=1)
    value: str | None = None
    map: dict[str, str] | None = None
    format: str | None = Field(default=None, description="strptime format for dates")
    optional: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        return self


Spec = Annotated[ColumnSpec, BeforeValidator(_column_shorthand)]


class PersonKeySpec(BaseModel):
    """Columns of the fallback key: name, date of birth and postcode together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    given_name: str
    family_name: str
    born: str
    postcode: str
    born_format: str = "%Y-%m-%d"

    def columns(self) -> list[str]:
        """The four columns, in the order the key uses them."""
        return [self.given_name, self.family_name, self.born, self.postcode]


class CsvOptions(BaseModel):
    """How the CSV file is written: encoding, delimiter and quote character."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: Literal["utf-8", "latin-1", "cp1252", "ascii"] = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)


class EventMapping(BaseModel):
    """A whole mapping file: the source system, and how each draft field is filled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_system: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")
    timezone: str = "UTC"
    csv: CsvOptions = CsvOptions()
    fields: dict[str, Spec]
    person_key: PersonKeySpec | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("fields")
    @classmethod
    def _known_targets(cls, fields: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for target in fields:
            group, _, name = target.partition(".")
            ok = (
                target in _SCALAR_TARGETS
                or (group == "basis" and name in _BASIS_FIELDS)
                or (group == "payload" and re.fullmatch(r"[a-z_]+", name) is not None)
                or (group == "identifiers" and name in _SCHEMES)
            )
            if not ok:
                raise ValueError(
                    f"unknown target {target!r}: use source_ref, occurred_at, area_code, "
                    f"age_band, basis.<{'|'.join(sorted(_BASIS_FIELDS))}>, payload.<field> "
                    f"or identifiers.<{'|'.join(sorted(_SCHEMES))}>"
                )
        for needed in ("source_ref", "occurred_at", "payload.family", "payload.kind"):
            if needed not in fields:
                raise ValueError(f"the mapping needs a {needed!r} field")
        return fields

    @model_validator(mode="after")
    def _some_identifier(self) -> EventMapping:
        if self.person_key is None and not any(t.startswith("identifiers.") for t in self.fields):
            raise ValueError("map at least one identifiers.<scheme> field or a person_key")
        return self

    @classmethod
    def load(cls, path: Path) -> EventMapping:
        """The mapping in ``path``; ConfigError names the file, the key and the reason."""
        return load_config_file(path, cls, "mapping")

    def columns(self) -> list[str]:
        """Every column the mapping reads, in a stable order (for checking a header)."""
        names = [spec.column for spec in self.fields.values() if spec.column]
        if self.person_key is not None:
            names.extend(self.person_key.columns())
        return sorted(set(names))

    def draft(self, row: MappingABC[str, Any], event_id: str) -> EventDraft:
        """The draft for one row (cells are text from a CSV or typed values from SQL).

        Raises ``EventRejected`` whose pointers are the draft's fields; ``explain`` turns
        them into column names for a reject file.
        """
        data: dict[str, Any] = {"event_id": event_id, "identifiers": {}, "basis": {}}
        errors: list[tuple[str, str]] = []
        for target, spec in self.fields.items():
            try:
                value = self._cell(target, spec, row)
            except ValueError as exc:
                errors.append((_pointer(target), str(exc)))
                continue
            if value is None:
                continue
            group, _, name = target.partition(".")
            if group in ("basis", "payload", "identifiers") and name:
                data.setdefault(group, {})[name] = value
            else:
                data[target] = value
        if self.person_key is not None:
            try:
                key = self._person_key(row)
            except (IdentifierError, ValueError) as exc:
                errors.append(("/identifiers/person", str(exc).removeprefix("person: ")))
            else:
                if key is not None:
                    data["identifiers"]["person"] = key
        if errors:
            raise EventRejected(errors)
        if not data["basis"]:
            data["basis"] = None
        return EventDraft.parse(data)

    def _cell(self, target: str, spec: ColumnSpec, row: MappingABC[str, Any]) -> Any:
        if spec.value is not None:
            return spec.value
        assert spec.column is not None
        raw = row.get(spec.column)
        if isinstance(raw, str):
            raw = raw.strip()
        if raw is None or raw == "":
            if spec.optional:
                return None
            raise ValueError("is empty")
        if spec.map is not None:
            key = str(raw)
            if key not in spec.map:
                raise ValueError(f"is not one of the mapped codes {sorted(spec.map)}")
            raw = spec.map[key]
        if target == "occurred_at":
            return self._moment(raw, spec.format)
        return raw if isinstance(raw, (str, datetime)) else str(raw)

    def _moment(self, raw: Any, fmt: str | None) -> datetime:
        """A date or time as an aware datetime; naive ones are in the mapping's time zone."""
        if isinstance(raw, datetime):
            moment = raw
        elif isinstance(raw, date):
            moment = datetime(raw.year, raw.month, raw.day)
        else:
            try:
                moment = (
                    datetime.strptime(str(raw), fmt) if fmt else datetime.fromisoformat(str(raw))
                )
            except ValueError:
                expected = f"the format {fmt}" if fmt else "ISO 8601 (2026-03-02T10:30:00)"
                raise ValueError(f"is not a date or time in {expected}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.timezone))
        return moment

    def _person_key(self, row: MappingABC[str, Any]) -> str | None:
        spec = self.person_key
        assert spec is not None
        cells = [row.get(column) for column in spec.columns()]
        texts = ["" if cell is None else str(cell).strip() for cell in cells]
        if not any(texts):
            return None
        given, family, born_text, postcode = texts
        born = cells[2]
        if not isinstance(born, date):
            try:
                born = datetime.strptime(born_text, spec.born_format).date()
            except ValueError:
                raise ValueError(f"date of birth is not in the format {spec.born_format}") from None
        if isinstance(born, datetime):
            born = born.date()
        return person_key(given, family, born, postcode)

    def explain(self, exc: EventRejected) -> str:
        """The errors of a rejected row, each named by its column (and target field)."""
        return "; ".join(self._where(pointer) + message for pointer, message in exc.errors)

    def _where(self, pointer: str) -> str:
        pointer = _ALIASES.get(pointer, pointer)
        parts = pointer.strip("/").split("/")
        target = (
            ".".join(parts[:2]) if parts[0] in ("basis", "payload", "identifiers") else parts[0]
        )
        if target == "identifiers.person" and self.person_key is not None:
            return f"columns {self.person_key.columns()} (person key): "
        spec = self.fields.get(target)
        if spec is not None and spec.column is not None:
            return f"column {spec.column!r} ({target}): "
        if target == "identifiers" or target.startswith("identifiers."):
            return "identifiers: "
        return f"{target or 'event'}: "


def _pointer(target: str) -> str:
    return "/" + target.replace(".", "/")
