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
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import fastavro
from fastavro.schema import SchemaParseException
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub._admin import ensure_topic
from hub.codec import ParsedSchema
from hub.compatibility import Compatibility, Incompatibility, incompatibilities, parse
from hub.config import PROJECT_ROOT, Settings
from hub.errors import BrokerError, ConfigError, InputError, RegistryError, SchemaNotFound
from hub.topics import Topics

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "SCHEMA_DIR",
    "RegisteredSchema",
    "SchemaRegistry",
    "SubjectVersion",
    "VersionRef",
    "load_schema",
    "parse_version",
    "schema_id_of",
    "validate_schema",
]

SCHEMA_DIR = PROJECT_ROOT / "schemas"
DEFAULT_COMPATIBILITY = Compatibility.BACKWARD

VersionRef = int | Literal["latest"]


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The JSON of ``schemas/<name>.avsc``; ConfigError naming the file if it is invalid."""
    path = directory / f"{name}.avsc"
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        fastavro.parse_schema(raw)
    except (OSError, ValueError, SchemaParseException) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from exc
    return raw


def _normalised(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def schema_id_of(schema: dict[str, Any]) -> int:
    """The registry id of a schema: a 31-bit fingerprint of its normalised JSON (never 0)."""
    digest = hashlib.sha256(_normalised(schema).encode()).digest()
    return (int.from_bytes(digest[:4], "big") & 0x7FFFFFFF) or 1


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


@dataclass(frozen=True)
class SubjectVersion:
    """One version of one subject: which schema it is, and whether it was soft-deleted."""

    subject: str
    version: int
    schema_id: int
    deleted: bool = False


class SchemaRegistry:
    """Registers and looks up schemas in the ``_schemas`` topic; safe to share across threads.

    Every call that answers about subjects first reads what other processes wrote since
    the last call (the topic is small and read incrementally), so several hub processes
    give the same answers.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = Topics(settings.topic_prefix).schemas
        self._by_id: dict[int, RegisteredSchema] = {}
        self._subjects: dict[str, dict[int, SubjectVersion]] = {}
        self._config: dict[str | None, Compatibility] = {}
        self._lock = threading.RLock()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    # -- schemas and versions -----------------------------------------------------------

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register ``schema`` under ``subject`` (idempotent) and return it with its id."""
        return self._by_id[self.register_version(subject, schema).schema_id]

    def register_version(self, subject: str, schema: dict[str, Any]) -> SubjectVersion:
        """Register ``schema`` as the next version of ``subject`` if the subject's mode allows.

        Returns the existing version if the schema is already live under the subject.
        RegistryError 409 lists each incompatibility, naming the field and the reason.
        """
        schema_id = schema_id_of(schema)
        with self._lock:
            self._refresh()
            live = self._live(subject)
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
            self._remember(schema_id, schema)
            number = max(self._subjects.get(subject, {}), default=0) + 1
            version = SubjectVersion(subject, number, schema_id)
            self._write_version(version)
            return version

    def lookup(self, subject: str, schema: dict[str, Any], deleted: bool = False) -> SubjectVersion:
        """The version of ``subject`` that is ``schema``; 40401/40403 if there is none."""
        schema_id = schema_id_of(schema)
        with self._lock:
            self._refresh()
            versions = self._versions_of(subject, deleted)
            for version in versions:
                if version.schema_id == schema_id:
                    return version
        raise RegistryError(40403, "Schema not found")

    def knows(self, schema_id: int) -> bool:
        """True if ``schema_id`` is already cached (``by_id`` will not touch Kafka)."""
        return schema_id in self._by_id

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with ``schema_id``; re-reads the topic once before SchemaNotFound."""
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        with self._lock:
            self._refresh()
            found = self._by_id.get(schema_id)
        if found is None:
            raise SchemaNotFound(f"schema id {schema_id} is not registered")
        return found

    def usages(self, schema_id: int, deleted: bool = False) -> list[SubjectVersion]:
        """Every subject version that is the schema ``schema_id``; 40403 if it is unknown."""
        with self._lock:
            self._refresh()
            if schema_id not in self._by_id:
                raise RegistryError(40403, f"Schema {schema_id} not found")
            return [
                version
                for versions in self._subjects.values()
                for version in versions.values()
                if version.schema_id == schema_id and (deleted or not version.deleted)
            ]

    def subjects(self) -> dict[str, list[int]]:
        """Each live subject's schema ids, oldest version first."""
        with self._lock:
            self._refresh()
            return {
                name: [version.schema_id for version in self._live(name)]
                for name in self.subject_names()
            }

    def subject_names(self, deleted: bool = False) -> list[str]:
        """Subjects with at least one version (live ones only unless ``deleted``), sorted."""
        with self._lock:
            self._refresh()
            return sorted(
                name
                for name, versions in self._subjects.items()
                if versions and (deleted or any(not v.deleted for v in versions.values()))
            )

    def versions(self, subject: str, deleted: bool = False) -> list[SubjectVersion]:
        """The versions of ``subject``, oldest first; 40401 if it has none."""
        with self._lock:
            self._refresh()
            return self._versions_of(subject, deleted)

    def version(self, subject: str, ref: VersionRef, deleted: bool = False) -> SubjectVersion:
        """One version of ``subject`` ('latest' is the newest live one); 40401/40402."""
        with self._lock:
            self._refresh()
            versions = self._versions_of(subject, deleted)
            if ref == "latest":
                return versions[-1]
            for version in versions:
                if version.version == ref:
                    return version
        raise RegistryError(40402, f"Version {ref} not found.")

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
            if ref is None:
                return self._problems(subject, schema, self._live(subject), None)
            return self._problems(subject, schema, self._live(subject), self.version(subject, ref))

    # -- compatibility config -----------------------------------------------------------

    def compatibility(self, subject: str | None = None, fallback: bool = True) -> Compatibility:
        """The mode for ``subject`` (or the global one); 40408 if the subject has none set
        and ``fallback`` is False."""
        with self._lock:
            self._refresh()
            if subject is not None and subject in self._config:
                return self._config[subject]
            if subject is not None and not fallback:
                raise RegistryError(
                    40408,
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                )
            return self._config.get(None, DEFAULT_COMPATIBILITY)

    def set_compatibility(self, subject: str | None, mode: Compatibility) -> Compatibility:
        """Set the mode for ``subject`` (None: the global default); returns it."""
        with self._lock:
            self._write(_config_key(subject), {"compatibilityLevel": mode.value})
            self._config[subject] = mode
            return mode

    def delete_compatibility(self, subject: str | None) -> Compatibility:
        """Drop ``subject``'s own mode (it falls back to the global one); returns the old one."""
        with self._lock:
            previous = self.compatibility(subject, fallback=subject is None)
            self._write(_config_key(subject), None)
            self._config.pop(subject, None)
            return previous

    # -- deletes --------------------------------------------------------------------------

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every live version of ``subject`` (or, if ``permanent``, erase the
        soft-deleted ones); returns the version numbers affected."""
        with self._lock:
            self._refresh()
            versions = self._versions_of(subject, deleted=True)
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
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    # -- internals ------------------------------------------------------------------------

    def _live(self, subject: str) -> list[SubjectVersion]:
        return [v for v in self._ordered(subject) if not v.deleted]

    def _ordered(self, subject: str) -> list[SubjectVersion]:
        return [self._subjects[subject][n] for n in sorted(self._subjects.get(subject, {}))]

    def _versions_of(self, subject: str, deleted: bool) -> list[SubjectVersion]:
        versions = self._ordered(subject) if deleted else self._live(subject)
        if not versions:
            raise RegistryError(40401, f"Subject '{subject}' not found.")
        return versions

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
        earlier = [(f"version {v.version}", self._by_id[v.schema_id].schema) for v in live]
        try:
            return incompatibilities(schema, earlier, mode)
        except InputError as exc:
            raise RegistryError(42201, f"Invalid schema: {exc}") from None

    def _remember(self, schema_id: int, schema: dict[str, Any]) -> RegisteredSchema:
        existing = self._by_id.get(schema_id)
        if existing is not None:
            if _normalised(existing.schema) != _normalised(schema):
                raise ConfigError(f"schema id {schema_id} collides with a different schema")
            return existing
        registered = RegisteredSchema(
            schema_id, schema, cast(ParsedSchema, fastavro.parse_schema(schema))
        )
        self._by_id[schema_id] = registered
        return registered

    def _write_version(self, version: SubjectVersion) -> None:
        value = {
            "subject": version.subject,
            "version": version.version,
            "id": version.schema_id,
            "schema": self._by_id[version.schema_id].text,
            "deleted": version.deleted,
        }
        self._write(_schema_key(version.subject, version.version), value)
        self._subjects.setdefault(version.subject, {})[version.version] = version

    def _erase(self, version: SubjectVersion) -> None:
        self._write(_schema_key(version.subject, version.version), None)
        self._subjects.get(version.subject, {}).pop(version.version, None)

    def _write(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        ensure_topic(self._settings, self._topic, partitions=1, compact=True)
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self._settings.bootstrap_servers, acks="all", linger_ms=0
            )
        try:
            self._producer.send(
                self._topic,
                key=_json_bytes(key),
                value=None if value is None else _json_bytes(value),
                partition=0,  # the registry is one ordered log
            ).get(timeout=self._settings.request_timeout_ms / 1000)
        except KafkaError as exc:
            raise BrokerError(f"could not write to {self._topic}: {exc}") from exc

    def _refresh(self) -> None:
        """Read what was written to the topic since the last read (all of it, the first time)."""
        try:
            for key, value in self._new_records():
                self._apply(key, value)
        except KafkaError as exc:
            raise BrokerError(f"could not read {self._topic}: {exc}") from exc

    def _new_records(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        partition = TopicPartition(self._topic, 0)
        if self._consumer is None:
            # Create the topic first: asking a broker about a missing topic may auto-create
            # it with the broker's defaults (several partitions, not compacted).
            ensure_topic(self._settings, self._topic, partitions=1, compact=True)
            consumer = KafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                enable_auto_commit=False,
                request_timeout_ms=self._settings.request_timeout_ms,
            )
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            self._consumer = consumer
        consumer = self._consumer
        end = consumer.end_offsets([partition])[partition]
        deadline = time.monotonic() + self._settings.request_timeout_ms / 1000
        while consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise BrokerError(f"timed out reading {self._topic} to offset {end}")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    yield record.key, record.value

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
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
            registered = self._remember(int(parsed["id"]), json.loads(parsed["schema"]))
            self._subjects.setdefault(subject, {})[number] = SubjectVersion(
                subject, number, registered.schema_id, bool(parsed.get("deleted"))
            )


def _schema_key(subject: str, version: int) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def _config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
