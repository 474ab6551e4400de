"""Schema registry kept in the compacted ``_schemas`` topic, in Confluent's record layout.

Ids are fingerprints: the first 31 bits of SHA-256 over the schema's normalised JSON (keys
sorted, whitespace dropped; docs and defaults kept, since they are part of the contract).
So every process that registers the same schema agrees on its id without a leader, and ids
survive restarts because they are recomputed, not allocated. Records follow the Confluent
Schema Registry's key/value JSON (``SCHEMA`` and ``CONFIG`` keys, soft deletes as
``"deleted": true``, permanent deletes as tombstones) so its tooling can read the topic.

Version numbers are the one thing allocated: a register reads the topic to its end first
and takes the next number. Two processes registering *different* schemas under one subject
at the same instant could both take it (the later write wins the key); Confluent avoids that
with an elected leader, which this store does not have.

The schema files and their ids are ``hub.schema_files``.

Reading guide: ``SchemaRegistry`` here is the public facade (its lock, and the operations
that change the registry); ``hub._schemas_topic`` does the topic's Kafka I/O;
``hub._schema_state`` holds the record layout and the state the records fold to.
"""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import fastavro
from fastavro.schema import SchemaParseException

from hub._schema_state import (
    DEFAULT_COMPATIBILITY,
    SchemaState,
    SubjectVersion,
    VersionRef,
    config_key,
    config_value,
    schema_key,
    schema_value,
)
from hub._schemas_topic import SchemasTopic
from hub.compatibility import Compatibility, Incompatibility, incompatibilities, parse
from hub.config import Settings
from hub.errors import InputError, RegistryError, SchemaNotFound
from hub.schema_files import RegisteredSchema, schema_id_of

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "SchemaRegistry",
    "SubjectVersion",
    "VersionRef",
    "parse_version",
    "validate_schema",
]


def validate_schema(text: object) -> dict[str, Any]:
    """A schema sent as JSON text, checked by both fastavro and avro; 42201 if it is invalid."""
    if not isinstance(text, str):
        raise RegistryError(42201, "Invalid schema: 'schema' must be a string of Avro JSON")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise RegistryError(42201, f"Invalid schema: not JSON: {exc}") from None
    if not isinstance(schema, dict):
        # Named records are what the hub's contracts are; primitives would need no registry.
        raise RegistryError(42201, "Invalid schema: expected a JSON object (a named Avro type)")
    try:
        fastavro.parse_schema(schema)
        parse(schema)
    except (InputError, SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise RegistryError(42201, f"Invalid schema: {exc}") from None
    return cast(dict[str, Any], schema)


def parse_version(text: str) -> VersionRef:
    """A version from a URL: 'latest', -1 (also latest) or 1..2^31-1; 42202 otherwise."""
    if text == "latest":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number == -1:
        return "latest"
    if not 1 <= number <= 2**31 - 1:
        raise RegistryError(
            42202,
            f"The specified version '{text}' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
        )
    return number


class SchemaRegistry:
    """Registers and looks up schemas in the ``_schemas`` topic; safe to share across threads.

    Every call that answers about subjects first reads what other processes wrote since
    the last call (the topic is small and read incrementally), so several hub processes
    give the same answers. One lock guards the topic's clients and the state read from it.
    """

    def __init__(self, settings: Settings) -> None:
        self._topic = SchemasTopic(settings)
        self._state = SchemaState()
        self._lock = threading.RLock()

    # -- schemas and versions -----------------------------------------------------------

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register ``schema`` under ``subject`` (idempotent) and return it with its id."""
        return self._state.schema(self.register_version(subject, schema).schema_id)

    def register_version(self, subject: str, schema: dict[str, Any]) -> SubjectVersion:
        """Register ``schema`` as the next version of ``subject`` if the subject's mode allows.

        Returns the existing version if the schema is already live under the subject.
        RegistryError 409 lists each incompatibility, naming the field and the reason.
        """
        schema_id = schema_id_of(schema)
        with self._lock:
            self._refresh()
            live = self._state.live(subject)
            for version in live:
                if version.schema_id == schema_id:
                    return version
            problems = self._problems(subject, schema, live, None)
            if problems:
                raise RegistryError(
                    409,
                    "Schema being registered is incompatible with an earlier schema for "
                    f'subject "{subject}", details: [{"; ".join(map(str, problems))}]',
                )
            self._state.remember(schema_id, schema)
            version = SubjectVersion(subject, self._state.next_version(subject), schema_id)
            self._write_version(version)
            return version

    def lookup(self, subject: str, schema: dict[str, Any], deleted: bool = False) -> SubjectVersion:
        """The version of ``subject`` that is ``schema``; 40401/40403 if there is none."""
        schema_id = schema_id_of(schema)
        with self._lock:
            self._refresh()
            return self._state.lookup(subject, schema_id, deleted)

    def knows(self, schema_id: int) -> bool:
        """True if ``schema_id`` is already cached (``by_id`` will not touch Kafka)."""
        return self._state.find(schema_id) is not None

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with ``schema_id``; re-reads the topic once before SchemaNotFound."""
        found = self._state.find(schema_id)
        if found is not None:
            return found
        with self._lock:
            self._refresh()
            found = self._state.find(schema_id)
        if found is None:
            raise SchemaNotFound(f"schema id {schema_id} is not registered")
        return found

    def usages(self, schema_id: int, deleted: bool = False) -> list[SubjectVersion]:
        """Every subject version that is the schema ``schema_id``; 40403 if it is unknown."""
        with self._lock:
            self._refresh()
            return self._state.usages(schema_id, deleted)

    def subjects(self) -> dict[str, list[int]]:
        """Each live subject's schema ids, oldest version first."""
        with self._lock:
            self._refresh()
            return {
                name: [version.schema_id for version in self._state.live(name)]
                for name in self.subject_names()
            }

    def subject_names(self, deleted: bool = False) -> list[str]:
        """Subjects with at least one version (live ones only unless ``deleted``), sorted."""
        with self._lock:
            self._refresh()
            return self._state.subject_names(deleted)

    def versions(self, subject: str, deleted: bool = False) -> list[SubjectVersion]:
        """The versions of ``subject``, oldest first; 40401 if it has none."""
        with self._lock:
            self._refresh()
            return self._state.versions(subject, deleted)

    def version(self, subject: str, ref: VersionRef, deleted: bool = False) -> SubjectVersion:
        """One version of ``subject`` ('latest' is the newest live one); 40401/40402."""
        with self._lock:
            self._refresh()
            return self._state.version(subject, ref, deleted)

    def check(
        self, subject: str, schema: dict[str, Any], ref: VersionRef | None = None
    ) -> list[Incompatibility]:
        """How ``schema`` would break ``subject``'s mode: against ``ref``, or as a register would.

        With a version (or 'latest') the check is against that one version, as Confluent's
        ``/compatibility/subjects/{s}/versions/{v}`` does; with None, against the versions
        the mode names (all for transitive modes). A subject with no versions accepts anything.
        """
        with self._lock:
            self._refresh()
            live = self._state.live(subject)
            if ref is None:
                return self._problems(subject, schema, live, None)
            return self._problems(subject, schema, live, self.version(subject, ref))

    # -- compatibility config -----------------------------------------------------------

    def compatibility(self, subject: str | None = None, fallback: bool = True) -> Compatibility:
        """The mode for ``subject`` (or the global one); 40408 if the subject has none set
        and ``fallback`` is False."""
        with self._lock:
            self._refresh()
            return self._state.compatibility(subject, fallback)

    def set_compatibility(self, subject: str | None, mode: Compatibility) -> Compatibility:
        """Set the mode for ``subject`` (None: the global default); returns it."""
        with self._lock:
            self._topic.write(config_key(subject), config_value(mode))
            self._state.set_compatibility(subject, mode)
            return mode

    def delete_compatibility(self, subject: str | None) -> Compatibility:
        """Drop ``subject``'s own mode (it falls back to the global one); returns the old one."""
        with self._lock:
            previous = self.compatibility(subject, fallback=subject is None)
            self._topic.write(config_key(subject), None)
            self._state.delete_compatibility(subject)
            return previous

    # -- deletes --------------------------------------------------------------------------

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every live version of ``subject`` (or, if ``permanent``, erase the
        soft-deleted ones); returns the version numbers affected."""
        with self._lock:
            self._refresh()
            versions = self._state.versions(subject, deleted=True)
            live = [v for v in versions if not v.deleted]
            if permanent:
                if live:
                    raise RegistryError(
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted",
                    )
                for version in versions:
                    self._erase(version)
                return [v.version for v in versions]
            if not live:
                raise RegistryError(
                    40404,
                    f"Subject '{subject}' was soft deleted.Set permanent=true to delete "
                    "permanently",
                )
            for version in live:
                self._write_version(
                    SubjectVersion(subject, version.version, version.schema_id, True)
                )
            return [v.version for v in live]

    def delete_version(self, subject: str, ref: VersionRef, permanent: bool = False) -> int:
        """Soft-delete one version (or erase a soft-deleted one if ``permanent``)."""
        with self._lock:
            self._refresh()
            version = self.version(subject, ref, deleted=permanent or ref != "latest")
            if permanent:
                if not version.deleted:
                    raise RegistryError(
                        40407,
                        f"Subject '{subject}' Version {version.version} was not deleted first "
                        "before being permanently deleted",
                    )
                self._erase(version)
            else:
                if version.deleted:
                    raise RegistryError(
                        40406,
                        f"Subject '{subject}' Version {version.version} was soft deleted.Set "
                        "permanent=true to delete permanently",
                    )
                self._write_version(
                    SubjectVersion(subject, version.version, version.schema_id, True)
                )
            return version.version

    def close(self) -> None:
        """Close the registry's Kafka clients (it reopens them if used again)."""
        with self._lock:
            self._topic.close()

    # -- internals ------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read what was written to the topic since the last read (all of it, the first time)."""
        for key, value in self._topic.new_records():
            self._state.apply(key, value)

    def _problems(
        self,
        subject: str,
        schema: dict[str, Any],
        live: list[SubjectVersion],
        only: SubjectVersion | None,
    ) -> list[Incompatibility]:
        mode = self.compatibility(subject)
        if only is not None:
            # One named version: its mode's direction, against exactly that version.
            mode = Compatibility(mode.value.removesuffix("_TRANSITIVE"))
            live = [only]
        earlier = [(f"version {v.version}", self._state.schema(v.schema_id).schema) for v in live]
        try:
            return incompatibilities(schema, earlier, mode)
        except InputError as exc:
            raise RegistryError(42201, f"Invalid schema: {exc}") from None

    def _write_version(self, version: SubjectVersion) -> None:
        schema = self._state.schema(version.schema_id)
        self._topic.write(
            schema_key(version.subject, version.version), schema_value(version, schema)
        )
        self._state.put(version)

    def _erase(self, version: SubjectVersion) -> None:
        self._topic.write(schema_key(version.subject, version.version), None)
        self._state.erase(version)
