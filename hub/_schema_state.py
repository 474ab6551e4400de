"""What the ``_schemas`` records mean: their layout, the values they carry, the state they fold to.

Private to ``hub.registry``, which re-exports its value types and guards ``SchemaState`` with
its lock. The record layout is Confluent's (``SCHEMA`` and ``CONFIG`` keys, soft deletes as
``"deleted": true``, permanent deletes as tombstones), so its tooling can read the topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

import fastavro

from hub.codec import ParsedSchema
from hub.compatibility import Compatibility
from hub.errors import ConfigError, RegistryError
from hub.schema_files import RegisteredSchema, normalised

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "SchemaState",
    "SubjectVersion",
    "VersionRef",
    "config_key",
    "config_value",
    "schema_key",
    "schema_value",
]

DEFAULT_COMPATIBILITY = Compatibility.BACKWARD

VersionRef = int | Literal["latest"]


@dataclass(frozen=True)
class SubjectVersion:
    """One version of one subject: which schema it is, and whether it was soft-deleted."""

    subject: str
    version: int
    schema_id: int
    deleted: bool = False


# -- the record layout --------------------------------------------------------------------


def schema_key(subject: str, version: int) -> dict[str, Any]:
    """The key of the record that holds one version of one subject."""
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def schema_value(version: SubjectVersion, schema: RegisteredSchema) -> dict[str, Any]:
    """The value of the record that says ``version`` is ``schema`` (and whether it is deleted)."""
    return {
        "subject": version.subject,
        "version": version.version,
        "id": version.schema_id,
        "schema": schema.text,
        "deleted": version.deleted,
    }


def config_key(subject: str | None) -> dict[str, Any]:
    """The key of the record that holds ``subject``'s mode (None: the global one)."""
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def config_value(mode: Compatibility) -> dict[str, Any]:
    """The value of the record that sets a compatibility mode."""
    return {"compatibilityLevel": mode.value}


# -- the state ------------------------------------------------------------------------------


class SchemaState:
    """The schemas, subject versions and modes the records say, so queries need no Kafka.

    No I/O and no locking: ``SchemaRegistry`` reads the records in and holds its lock.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}
        self._subjects: dict[str, dict[int, SubjectVersion]] = {}
        self._config: dict[str | None, Compatibility] = {}

    # -- changes --------------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one ``_schemas`` record into the state (later records win, as compaction keeps)."""
        if key is None:
            return
        parsed_key = json.loads(key)
        keytype = parsed_key.get("keytype")
        if keytype == "CONFIG":
            subject = parsed_key.get("subject")
            if value is None:
                self._config.pop(subject, None)
            else:
                self._config[subject] = Compatibility.parse(json.loads(value)["compatibilityLevel"])
        elif keytype == "SCHEMA":
            subject, number = parsed_key["subject"], int(parsed_key["version"])
            if value is None:
                self._subjects.get(subject, {}).pop(number, None)
                return
            parsed = json.loads(value)
            registered = self.remember(int(parsed["id"]), json.loads(parsed["schema"]))
            self._subjects.setdefault(subject, {})[number] = SubjectVersion(
                subject, number, registered.schema_id, bool(parsed.get("deleted"))
            )

    def remember(self, schema_id: int, schema: dict[str, Any]) -> RegisteredSchema:
        """Cache ``schema`` under its id; ConfigError if the id is taken by a different one."""
        existing = self._by_id.get(schema_id)
        if existing is not None:
            if normalised(existing.schema) != normalised(schema):
                raise ConfigError(f"schema id {schema_id} collides with a different schema")
            return existing
        registered = RegisteredSchema(
            schema_id, schema, cast(ParsedSchema, fastavro.parse_schema(schema))
        )
        self._by_id[schema_id] = registered
        return registered

    def put(self, version: SubjectVersion) -> None:
        """Record ``version`` as written (a new one, or one now soft-deleted)."""
        self._subjects.setdefault(version.subject, {})[version.version] = version

    def erase(self, version: SubjectVersion) -> None:
        """Forget ``version``, as its tombstone does."""
        self._subjects.get(version.subject, {}).pop(version.version, None)

    def set_compatibility(self, subject: str | None, mode: Compatibility) -> None:
        """Record ``subject``'s mode (None: the global one) as written."""
        self._config[subject] = mode

    def delete_compatibility(self, subject: str | None) -> None:
        """Forget ``subject``'s own mode, as its tombstone does."""
        self._config.pop(subject, None)

    # -- queries --------------------------------------------------------------------------

    def find(self, schema_id: int) -> RegisteredSchema | None:
        """The schema with ``schema_id`` if it is known."""
        return self._by_id.get(schema_id)

    def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema of a version this state holds (so it is known: an invariant)."""
        return self._by_id[schema_id]

    def usages(self, schema_id: int, deleted: bool) -> list[SubjectVersion]:
        """Every subject version that is the schema ``schema_id``; 40403 if it is unknown."""
        if schema_id not in self._by_id:
            raise RegistryError(40403, f"Schema {schema_id} not found")
        return [
            version
            for versions in self._subjects.values()
            for version in versions.values()
            if version.schema_id == schema_id and (deleted or not version.deleted)
        ]

    def subject_names(self, deleted: bool) -> list[str]:
        """Subjects with at least one version (live ones only unless ``deleted``), sorted."""
        return sorted(
            name
            for name, versions in self._subjects.items()
            if versions and (deleted or any(not v.deleted for v in versions.values()))
        )

    def live(self, subject: str) -> list[SubjectVersion]:
        """The versions of ``subject`` that are not soft-deleted, oldest first."""
        return [v for v in self._ordered(subject) if not v.deleted]

    def versions(self, subject: str, deleted: bool) -> list[SubjectVersion]:
        """The versions of ``subject``, oldest first; 40401 if it has none."""
        versions = self._ordered(subject) if deleted else self.live(subject)
        if not versions:
            raise RegistryError(40401, f"Subject '{subject}' not found.")
        return versions

    def version(self, subject: str, ref: VersionRef, deleted: bool) -> SubjectVersion:
        """One version of ``subject`` ('latest' is the newest live one); 40401/40402."""
        versions = self.versions(subject, deleted)
        if ref == "latest":
            return versions[-1]
        for version in versions:
            if version.version == ref:
                return version
        raise RegistryError(40402, f"Version {ref} not found.")

    def lookup(self, subject: str, schema_id: int, deleted: bool) -> SubjectVersion:
        """The version of ``subject`` that is the schema ``schema_id``; 40401/40403."""
        for version in self.versions(subject, deleted):
            if version.schema_id == schema_id:
                return version
        raise RegistryError(40403, "Schema not found")

    def next_version(self, subject: str) -> int:
        """The number a new version of ``subject`` takes: one past the highest it holds."""
        return max(self._subjects.get(subject, {}), default=0) + 1

    def compatibility(self, subject: str | None, fallback: bool) -> Compatibility:
        """The mode for ``subject`` (or the global one); 40408 if the subject has none set
        and ``fallback`` is False."""
        if subject is not None and subject in self._config:
            return self._config[subject]
        if subject is not None and not fallback:
            raise RegistryError(
                40408,
                f"Subject '{subject}' does not have subject-level compatibility configured",
            )
        return self._config.get(None, DEFAULT_COMPATIBILITY)

    def _ordered(self, subject: str) -> list[SubjectVersion]:
        return [self._subjects[subject][n] for n in sorted(self._subjects.get(subject, {}))]
