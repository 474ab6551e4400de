"""Delivery: framed records to Kafka, each acknowledged (``acks=all``), with retries.

Every connector (SDK, HTTP ingest, CSV drop, SQL poll) ends here. A record is only
reported delivered once the broker acknowledged it; what the broker did not acknowledge
is sent again after an exponential backoff, which is safe because a record's event id is
fixed before the first attempt and the hub counts each event id once. What still fails
after the last attempt raises ``BrokerError`` (retriable: the caller may try later).

A connector creates no topic (it needs no admin rights: the hub's workers create each
partner's topics when it is onboarded), so a topic the cluster does not have is refused
with ``MissingTopic`` before anything is sent, rather than waited for until a timeout.

The producer is confluent-kafka's (librdkafka, in C), not kafka-python's: on the same
framed bytes it sent 160,000-374,000 records/s here against kafka-python's 17,000-24,000
(``placehub bench``'s ingest), whose per-record Python work was most of an SDK publish
(issue 15). Its ``murmur2_random`` partitioner is the Java client's murmur2 for a key, so
an event lands where ``hub.partitions.partition_for`` and every other client put its key.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hub.config import Settings
from hub.errors import BrokerError, ConfigError, EventRejected
from hub.kafka_clients import confluent_producer_options

__all__ = [
    "BATCH_BYTES",
    "Delivery",
    "EventTooLarge",
    "MissingTopic",
    "Outgoing",
    "Receipt",
]


# A connector's batch is hundreds of events (``publish_many``, an HTTP array, a CSV chunk)
# and is flushed at once: about 40 KiB a partition for 500 events of ~330 bytes. One batch
# a partition sent 16-21 % more a second than 16 KiB batches (kafka-python, 10,000 events,
# batches of 500, four partitions). Under the broker's 1 MiB batch limit.
BATCH_BYTES = 256 * 1024

_LOG = logging.getLogger(__name__)

# What librdkafka says of a record the broker (or the client's own limit) will never take.
_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}


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


class _Reports:
    """The broker's answers for one attempt, by position. librdkafka hands a delivery
    report to whichever thread polls, so another caller's ``flush`` may record ours."""

    def __init__(self) -> None:
        self.answered: dict[int, tuple[KafkaError | None, Message]] = {}
        self._changed = threading.Condition()

    def callback(self, position: int) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            with self._changed:
                self.answered[position] = (error, message)
                self._changed.notify_all()

        return report

    def wait_for(self, positions: Sequence[int], deadline: float) -> None:
        """Wait (until ``deadline``, monotonic) for an answer for each of ``positions``."""
        with self._changed:
            self._changed.wait_for(
                lambda: all(p in self.answered for p in positions),
                timeout=max(deadline - time.monotonic(), 0),
            )


class Delivery:
    """A confluent-kafka producer (acks=all, idempotent) that retries what was not
    acknowledged."""

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
        self._producer: Producer | None = None
        self._lock = threading.Lock()  # deliver() may be called from several threads
        self._present: set[str] = set()  # topics seen on the cluster (they are not deleted)

    def deliver(self, items: Sequence[Outgoing]) -> list[Receipt]:
        """Send ``items`` and return one receipt each, in order, once all are acknowledged."""
        if not items:
            return []
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
        deadline = time.monotonic() + self.timeout_ms / 1000 + 5
        try:
            producer = self._connected()
            self.require_topics({items[i].topic for i in pending})
        except BrokerError as exc:
            self._reset()
            return pending, str(exc)
        reports = _Reports()
        sent, problem = self._send(producer, items, pending, reports, deadline)
        # Send now rather than after linger.ms: the caller waits for these acks anyway. A
        # flush that times out is not the verdict: each report (or its absence) gives it.
        producer.flush(max(deadline - time.monotonic(), 0))
        reports.wait_for(sent, deadline)
        failed = pending[len(sent) :]
        for i in sent:
            error, message = reports.answered.get(i, (None, None))
            if message is None:
                failed.append(i)
                problem = "no answer from the broker in time"
            elif error is not None:
                if error.code() in _TOO_LARGE:
                    raise EventTooLarge(len(items[i].value), self.settings.max_event_bytes)
                failed.append(i)
                problem = error.str()
            else:
                # A written record's report always has both (librdkafka fills them).
                where = cast(int, message.partition()), cast(int, message.offset())
                receipts[i] = Receipt(items[i].item_id, items[i].topic, *where)
        if failed:
            self._reset()
        return sorted(failed), problem

    def _send(
        self,
        producer: Producer,
        items: Sequence[Outgoing],
        pending: list[int],
        reports: _Reports,
        deadline: float,
    ) -> tuple[list[int], str]:
        """Hand ``pending`` to the client, in order; returns those it took (all, unless it
        refused one or its queue stayed full until ``deadline``) and why it stopped."""
        sent: list[int] = []
        for i in pending:
            item = items[i]
            while True:
                try:
                    producer.produce(
                        item.topic, item.value, item.key, on_delivery=reports.callback(i)
                    )
                    break
                except BufferError:  # the client's queue is full: wait for some answers
                    if time.monotonic() > deadline:
                        return sent, "the client's queue stayed full"
                    producer.poll(0.05)
                except KafkaException as exc:
                    if exc.args[0].code() in _TOO_LARGE:
                        size, limit = len(item.value), self.settings.max_event_bytes
                        raise EventTooLarge(size, limit) from None
                    return sent, _reason(exc)
            sent.append(i)
        return sent, ""

    def require_topics(self, topics: set[str]) -> None:
        """Raise ``MissingTopic`` for the first of ``topics`` the cluster does not have (asked
        once per topic: a producer would wait ``message.timeout.ms`` for it, then time out);
        ``BrokerError`` if the cluster cannot be asked."""
        unseen = topics - self._present
        if not unseen:
            return
        try:  # the topics this principal may describe
            listed = self._connected().list_topics(timeout=self.timeout_ms / 1000).topics
        except KafkaException as exc:
            raise BrokerError(f"cannot list the topics: {_reason(exc)}") from None
        for topic in sorted(unseen):
            if topic not in listed:
                raise MissingTopic(topic)
        self._present |= unseen

    def _connected(self) -> Producer:
        """The producer, made on first use (so a broker that is away is retried too)."""
        with self._lock:
            if self._producer is None:
                settings = self.settings
                limit = settings.max_event_bytes + 1024
                self._producer = Producer(
                    {
                        **confluent_producer_options(settings),
                        "partitioner": "murmur2_random",
                        "linger.ms": 5,
                        "batch.size": min(BATCH_BYTES, limit),
                        "message.max.bytes": limit,
                        "request.timeout.ms": min(settings.request_timeout_ms, self.timeout_ms),
                        "message.timeout.ms": self.timeout_ms + 5,
                        "socket.connection.setup.timeout.ms": max(self.timeout_ms, 1000),
                        "logger": _LOG,  # librdkafka's own lines, in the caller's logging
                    }
                )
            return self._producer

    def _reset(self) -> None:
        """Drop the producer after a failure, so the next attempt starts a fresh connection
        (what it still holds is purged: that attempt already counted it failed)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.purge()
            producer.flush(1)

    def _sleep_before(self, attempt: int) -> None:
        """Exponential backoff with full jitter: spreads retries when many clients failed."""
        ceiling = min(self.max_backoff_ms, self.backoff_ms * 2 ** (attempt - 1))
        time.sleep(random.uniform(ceiling / 2, ceiling) / 1000)

    def close(self) -> None:
        """Flush and close the producer."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(self.timeout_ms / 1000)

    def __enter__(self) -> Delivery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reason(exc: KafkaException) -> str:
    """A client error's words (librdkafka's, naming no record's content)."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
