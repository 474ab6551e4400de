"""The Kafka I/O of the registry's compacted ``_schemas`` topic, kept apart from what it means.

Private to ``hub.registry``: ``SchemaRegistry`` holds its lock around every call here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub._admin import ensure_topic
from hub.config import Settings
from hub.errors import BrokerError
from hub.kafka_clients import kafka_python_options, kafka_python_producer_options
from hub.topics import Topics

__all__ = ["SchemasTopic"]


class SchemasTopic:
    """Appends records to ``_schemas`` and reads back what is new, so the registry needs no I/O.

    Not thread-safe on its own: the registry's lock guards it. The Kafka clients are opened
    on first use and reopened if used after ``close``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.name = Topics(settings.topic_prefix).schemas
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    def write(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Append one record (a None value is a tombstone) and wait for the broker to take it."""
        ensure_topic(self._settings, self.name, partitions=1, compact=True)
        if self._producer is None:
            self._producer = KafkaProducer(
                **kafka_python_producer_options(self._settings), linger_ms=0
            )
        try:
            self._producer.send(
                self.name,
                key=_json_bytes(key),
                value=None if value is None else _json_bytes(value),
                partition=0,  # the registry is one ordered log
            ).get(timeout=self._settings.request_timeout_ms / 1000)
        except KafkaError as exc:
            raise BrokerError(f"could not write to {self.name}: {exc}") from exc

    def new_records(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        """The records written since the last read (all of them, the first time), in order."""
        try:
            yield from self._read_to_end()
        except KafkaError as exc:
            raise BrokerError(f"could not read {self.name}: {exc}") from exc

    def close(self) -> None:
        """Close the Kafka clients (they are reopened if the topic is used again)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def _read_to_end(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        partition = TopicPartition(self.name, 0)
        if self._consumer is None:
            # Create the topic first: asking a broker about a missing topic may auto-create
            # it with the broker's defaults (several partitions, not compacted).
            ensure_topic(self._settings, self.name, partitions=1, compact=True)
            consumer = KafkaConsumer(
                **kafka_python_options(self._settings),
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
                raise BrokerError(f"timed out reading {self.name} to offset {end}")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    yield record.key, record.value


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
