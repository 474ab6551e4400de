"""Schema registry kept in the compacted ``_schemas`` topic, in Confluent's record layout.

Ids are fingerprints: the first 31 bits of SHA-256 over the schema's Parsing Canonical
Form. So every process that registers the same schema agrees on its id without a leader,
and ids survive restarts because they are recomputed, not allocated. Records follow the
Confluent Schema Registry's key/value JSON so its tooling can read the topic.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import to_parsing_canonical_form
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub._admin import ensure_topic
from hub.codec import ParsedSchema
from hub.config import PROJECT_ROOT, Settings
from hub.errors import BrokerError, ConfigError, SchemaNotFound
from hub.topics import Topics

__all__ = ["SCHEMA_DIR", "RegisteredSchema", "SchemaRegistry", "load_schema", "schema_id_of"]

SCHEMA_DIR = PROJECT_ROOT / "schemas"


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The JSON of ``schemas/<name>.avsc``; ConfigError naming the file if it is invalid."""
    path = directory / f"{name}.avsc"
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        fastavro.parse_schema(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from exc
    return raw


def schema_id_of(schema: dict[str, Any]) -> int:
    """The registry id of a schema: a 31-bit fingerprint of its canonical form (never 0)."""
    canonical = to_parsing_canonical_form(schema)
    digest = hashlib.sha256(canonical.encode()).digest()
    return (int.from_bytes(digest[:4], "big") & 0x7FFFFFFF) or 1


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry knows it."""

    schema_id: int
    schema: dict[str, Any]
    parsed: ParsedSchema = field(compare=False, repr=False)


class SchemaRegistry:
    """Registers and looks up schemas in the ``_schemas`` topic; safe to share across threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = Topics(settings.topic_prefix).schemas
        self._by_id: dict[int, RegisteredSchema] = {}
        self._versions: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._loaded_once = False

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register ``schema`` under ``subject`` (idempotent) and return it with its id."""
        schema_id = schema_id_of(schema)
        with self._lock:
            if not self._loaded_once:
                self._refresh()
            if schema_id in self._versions.get(subject, []):
                return self._by_id[schema_id]
            registered = self._remember(schema_id, schema)
            versions = self._versions.setdefault(subject, [])
            versions.append(schema_id)
            self._write(subject, len(versions), registered)
            return registered

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

    def subjects(self) -> dict[str, list[int]]:
        """Each subject's schema ids, oldest version first."""
        with self._lock:
            self._refresh()
            return {subject: list(ids) for subject, ids in self._versions.items()}

    def _remember(self, schema_id: int, schema: dict[str, Any]) -> RegisteredSchema:
        existing = self._by_id.get(schema_id)
        if existing is not None:
            if to_parsing_canonical_form(existing.schema) != to_parsing_canonical_form(schema):
                raise ConfigError(f"schema id {schema_id} collides with a different schema")
            return existing
        registered = RegisteredSchema(
            schema_id, schema, cast(ParsedSchema, fastavro.parse_schema(schema))
        )
        self._by_id[schema_id] = registered
        return registered

    def _write(self, subject: str, version: int, registered: RegisteredSchema) -> None:
        key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
        value = {
            "subject": subject,
            "version": version,
            "id": registered.schema_id,
            "schema": json.dumps(registered.schema, separators=(",", ":")),
            "deleted": False,
        }
        ensure_topic(self._settings, self._topic, partitions=1, compact=True)
        producer = KafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers, acks="all", linger_ms=0
        )
        try:
            producer.send(self._topic, key=_json_bytes(key), value=_json_bytes(value)).get(
                timeout=self._settings.request_timeout_ms / 1000
            )
        except KafkaError as exc:
            raise BrokerError(f"could not write to {self._topic}: {exc}") from exc
        finally:
            producer.close()

    def _refresh(self) -> None:
        """Read the whole topic (it is small and compacted) to learn every schema."""
        consumer = KafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            enable_auto_commit=False,
            request_timeout_ms=self._settings.request_timeout_ms,
            allow_auto_create_topics=False,  # else the broker makes it with N partitions
        )
        try:
            partition = TopicPartition(self._topic, 0)
            if not consumer.partitions_for_topic(self._topic):  # None or empty: no topic yet
                self._loaded_once = True
                return
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            while consumer.position(partition) < end:
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        self._apply(record.key, record.value)
        except KafkaError as exc:
            raise BrokerError(f"could not read {self._topic}: {exc}") from exc
        finally:
            consumer.close()
        self._loaded_once = True

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        parsed_key = json.loads(key)
        if parsed_key.get("keytype") != "SCHEMA":
            return
        parsed = json.loads(value)
        if parsed.get("deleted"):
            return
        registered = self._remember(int(parsed["id"]), json.loads(parsed["schema"]))
        versions = self._versions.setdefault(parsed["subject"], [])
        if registered.schema_id not in versions:
            versions.append(registered.schema_id)


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
