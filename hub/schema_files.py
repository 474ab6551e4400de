"""The contracts' ``.avsc`` files as package data, and the registry id each schema has.

Both wheels (``placehub`` and the SDK's ``placehub-connectors``) carry the files in the
``hub`` package under ``schemas/``; in a source checkout ``hub/schemas`` is a link to the
top-level ``schemas/``, where they are edited. So ``load_schema`` finds them wherever the
package is installed, through ``importlib.resources``.

Ids are fingerprints of a schema's normalised JSON, so a process that holds a schema knows
its id without asking the registry: ``LocalSchemas`` is how the SDK frames records without
reading or writing ``_schemas`` (the hub's workers register what partners write).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import SchemaParseException

from hub.codec import ParsedSchema
from hub.errors import ConfigError, SchemaNotFound

__all__ = [
    "SCHEMA_DIR",
    "LocalSchemas",
    "RegisteredSchema",
    "load_schema",
    "normalised",
    "schema_id_of",
]

# Installed packages are directories on disk (wheels are unpacked), so this is a Path.
SCHEMA_DIR = Path(str(files("hub") / "schemas"))


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The JSON of ``schemas/<name>.avsc``; ConfigError naming the file if it is invalid."""
    path = directory / f"{name}.avsc"
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        fastavro.parse_schema(raw)
    except (OSError, ValueError, SchemaParseException) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from exc
    return raw


def normalised(schema: dict[str, Any]) -> str:
    """A schema's JSON with keys sorted and whitespace dropped: what its id fingerprints."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def schema_id_of(schema: dict[str, Any]) -> int:
    """The registry id of a schema: a 31-bit fingerprint of its normalised JSON (never 0)."""
    digest = hashlib.sha256(normalised(schema).encode()).digest()
    return (int.from_bytes(digest[:4], "big") & 0x7FFFFFFF) or 1


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry knows it."""

    schema_id: int
    schema: dict[str, Any]
    parsed: ParsedSchema = field(compare=False, repr=False)

    @property
    def text(self) -> str:
        """The schema as the JSON string the REST API and the topic carry."""
        return json.dumps(self.schema, separators=(",", ":"))

    @classmethod
    def of(cls, schema: dict[str, Any]) -> RegisteredSchema:
        """``schema`` with its fingerprint id, parsed."""
        return cls(schema_id_of(schema), schema, cast(ParsedSchema, fastavro.parse_schema(schema)))


class LocalSchemas:
    """The schemas this package carries, by their ids: a registry that needs no Kafka.

    ``register`` only computes the id (the hub registered the subject: a partner may not
    write ``_schemas``); ``by_id`` knows the ids of the schemas registered through it.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """``schema`` with its id; ``subject`` is the hub's to register."""
        registered = RegisteredSchema.of(schema)
        self._by_id[registered.schema_id] = registered
        return registered

    def knows(self, schema_id: int) -> bool:
        """True if a schema with ``schema_id`` was registered here."""
        return schema_id in self._by_id

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with ``schema_id``; SchemaNotFound if it is not one registered here."""
        found = self._by_id.get(schema_id)
        if found is None:
            raise SchemaNotFound(f"schema id {schema_id} is not one of this package's schemas")
        return found
