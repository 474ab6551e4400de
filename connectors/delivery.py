"""Delivery: framed records to Kafka, each acknowledged (``acks=all``), with retries.

Every connector (SDK, HTTP ingest, CSV drop, SQL poll) ends here. A record is only
reported delivered once the broker acknowledged it; what the broker did not acknowledge
is sent again after an exponential backoff, which is safe because a record's event id is
fixed before the first attempt and the hub counts each event id once. What still fails
after the last attempt raises ``BrokerError`` (retriable: the caller may try later).

A connector creates no topic (it needs no admin rights: the hub's workers create each
partner's topics when it is onboarded), so a topic the cluster does not have is refused
with ``MissingTopic`` before anything is sent, rather than waited for until a timeout.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.partitioner.default import DefaultPartitioner

from hub.config import Settings
from hub.errors import BrokerError, ConfigError, EventRejected
from hub.kafka_clients import kafka_python_options, kafka_python_producer_options
from hub.partitions import partition_for

__all__ = [
    "BATCH_BYTES",
    "Delivery",
    "EventTooLarge",
    "KeptHashPartitioner",
    "MissingTopic",
    "Outgoing",
    "Receipt",
]


# A connector's batch is hundreds of events (``publish_many``, an HTTP array, a CSV chunk)
# and is flushed at once: about 40 KiB a partition for 500 events of ~330 bytes, which in
# kafka-python's default 16 KiB batches is three record batches, each appended, summed and
# answered on its own. One batch a partition sent 16-21 % more a second through
# ``Delivery`` (10,000 events, batches of 500, four partitions). Under the broker's 1 MiB
# batch limit; an event larger than this goes in a batch of its own size, as before.
BATCH_BYTES = 256 * 1024


class MissingTopic(ConfigError):
    """Raised when a record's topic does not exist: a connector may not create it, the hub
    must (sending again cannot help)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"{topic}: the topic does not exist, and a connector creates none")
        self.topic = topic


class EventTooLarge(EventRejected):
    """Raised when an encoded event is larger than the broker accepts; resending cannot help."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            [("", f"the encoded event is {size_bytes} bytes, over the limit of {limit_bytes}")]
        )


@dataclass(frozen=True)
class Outgoing:
    """One framed record ready to send; ``item_id`` (the event id) names it in receipts."""

    topic: str
    key: bytes
    value: bytes
    item_id: str


@dataclass(frozen=True)
class Receipt:
    """Proof that Kafka durably holds an event: where it was written."""

    event_id: str
    topic: str
    partition: int
    offset: int


class KeptHashPartitioner(DefaultPartitioner):  # type: ignore[misc]  # kafka has no types
    """kafka-python's default partitioner (the Java client's murmur2 of the key, so a key
    lands where any other client would put it), with each key's hash kept.

    A bulk load sends many events per person, each keyed by the person's token, and
    kafka-python's murmur2 is pure Python: about 8 µs of a send for a token key
    (``placehub bench``'s ingest, profiled); ``hub.partitions`` keeps it. Keys are tokens
    and ids, never raw identifiers.
    """

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: bytes | None,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, None, value, serialized_value, cluster))
        if topic not in cluster.topics():
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        partitions = sorted(cluster.partitions_for_topic(topic))
        return int(partitions[partition_for(serialized_key, len(partitions))])


class Delivery:
    """A kafka-python producer (acks=all, idempotent) that retries what was not acknowledged."""

    def __init__(
        self,
        settings: Settings,
        *,
        attempts: int = 5,
        backoff_ms: int = 200,
        max_backoff_ms: int = 5_000,
        timeout_ms: int | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.settings = settings
        self.attempts = attempts
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.timeout_ms = timeout_ms or settings.request_timeout_ms
        self._producer: Any = None
        self._lock = threading.Lock()  # deliver() may be called from several threads
        self._present: set[str] = set()  # topics seen on the cluster (they are not deleted)

    def deliver(self, items: Sequence[Outgoing]) -> list[Receipt]:
        """Send ``items`` and return one receipt each, in order, once all are acknowledged."""
        receipts: dict[int, Receipt] = {}
        pending = list(range(len(items)))
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self._sleep_before(attempt)
            pending, problem = self._attempt(items, pending, receipts)
            if not pending:
                return [receipts[i] for i in range(len(items))]
        raise BrokerError(
            f"{len(pending)} of {len(items)} records not acknowledged after "
            f"{self.attempts} attempt(s): {problem}"
        )

    def _attempt(
        self, items: Sequence[Outgoing], pending: list[int], receipts: dict[int, Receipt]
    ) -> tuple[list[int], str]:
        """One pass over ``pending``; returns what is still unacknowledged and why."""
        try:
            producer = self._connected()
            self.require_topics({items[i].topic for i in pending})
        except KafkaError as exc:
            self._reset()
            return pending, str(exc)
        sent: list[tuple[int, Any]] = []
        failed: list[int] = []
        problem = ""
        for position, i in enumerate(pending):
            item = items[i]
            try:
                sent.append((i, producer.send(item.topic, key=item.key, value=item.value)))
            except MessageSizeTooLargeError:
                raise EventTooLarge(len(item.value), self.settings.max_event_bytes) from None
            except KafkaError as exc:  # metadata timed out: the broker is away
                failed.extend(pending[position:])
                problem = str(exc)
                break
        # Send now rather than after linger_ms: the caller waits for these acks anyway, and
        # lingering put 5 ms on every call (about 150 one-event publishes/s; placehub bench).
        # A flush that fails or times out is not the verdict: each future below gives it.
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=self.timeout_ms / 1000 + 5)
        for i, future in sent:
            try:
                metadata = future.get(timeout=self.timeout_ms / 1000 + 5)
            except MessageSizeTooLargeError:
                raise EventTooLarge(len(items[i].value), self.settings.max_event_bytes) from None
            except KafkaError as exc:
                failed.append(i)
                problem = str(exc) or type(exc).__name__
                continue
            receipts[i] = Receipt(
                items[i].item_id, metadata.topic, metadata.partition, metadata.offset
            )
        if failed:
            self._reset()
        return sorted(failed), problem

    def require_topics(self, topics: set[str]) -> None:
        """Raise ``MissingTopic`` for the first of ``topics`` the cluster does not have (asked
        once per topic: a producer would wait ``max_block_ms`` for it, then time out);
        ``KafkaError`` if the cluster cannot be asked."""
        unseen = topics - self._present
        if not unseen:
            return
        consumer = KafkaConsumer(**kafka_python_options(self.settings), enable_auto_commit=False)
        try:
            listed = consumer.topics()  # the topics this principal may describe
        finally:
            consumer.close()
        for topic in sorted(unseen):
            if topic not in listed:
                raise MissingTopic(topic)
        self._present |= unseen

    def _connected(self) -> Any:
        """The producer, made on first use (so a broker that is away is retried too)."""
        with self._lock:
            return self._producer or self._connect()

    def _connect(self) -> Any:
        if self._producer is None:
            self._producer = KafkaProducer(
                **kafka_python_producer_options(self.settings),
                partitioner=KeptHashPartitioner(),
                linger_ms=5,
                batch_size=BATCH_BYTES,
                max_request_size=self.settings.max_event_bytes + 1024,
                request_timeout_ms=min(self.settings.request_timeout_ms, self.timeout_ms),
                delivery_timeout_ms=self.timeout_ms + 5,
                max_block_ms=self.timeout_ms,
                bootstrap_timeout_ms=self.timeout_ms,
            )
        return self._producer

    def _reset(self) -> None:
        """Drop the producer after a failure, so the next attempt starts a fresh connection."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=1)

    def _sleep_before(self, attempt: int) -> None:
        """Exponential backoff with full jitter: spreads retries when many clients failed."""
        ceiling = min(self.max_backoff_ms, self.backoff_ms * 2 ** (attempt - 1))
        time.sleep(random.uniform(ceiling / 2, ceiling) / 1000)

    def close(self) -> None:
        """Flush and close the producer."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()

    def __enter__(self) -> Delivery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
