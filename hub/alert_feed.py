"""The worker's one reader of ``hub.alerts`` for live streams, and where a stream resumes.

``hub.alerts`` is keyed by alert id, not by person, so no worker owns a practitioner's
alerts: every worker reads the whole topic with one aiokafka consumer of its own (no
group, no commits), from the end it had when the first stream opened, and hands each
record to every stream connected to it (``AlertFeed.subscribe``). A stream that resumes
from an earlier position (``Last-Event-ID``) first reads what it missed with a consumer of
its own, up to where the shared feed took over, so it gets each record once.

A position is the next offset of every partition, written ``"o0.o1.…"`` (``encode_position``)
as the ``id:`` of each event: a client that reconnects with it gets exactly what came after.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from hub.config import Settings
from hub.errors import InputError
from hub.keyed_read import reader, tail
from hub.models import Alert
from hub.serde import Serde

__all__ = [
    "AlertFeed",
    "BadPosition",
    "Cursor",
    "FeedRecord",
    "Subscription",
    "encode_position",
    "latest_of_each",
    "live_batches",
    "parse_position",
]

log = logging.getLogger(__name__)

BATCH_MAX = 200  # live records a stream takes at once (their audits go together)
QUEUE_MAX = 10_000  # records a slow stream may fall behind before it is closed (it resumes)
_OFFSET = re.compile(r"[0-9]{1,18}")


class BadPosition(ValueError):
    """Raised when a ``Last-Event-ID`` is not a position of this hub's alert stream."""


def encode_position(offsets: Sequence[int]) -> str:
    """The ``id:`` of an event: each partition's next offset, in partition order."""
    return ".".join(str(o) for o in offsets)


def parse_position(text: str, partitions: int) -> list[int]:
    """The offsets ``encode_position`` wrote for ``partitions`` partitions (``BadPosition``
    naming the rule broken, never the text)."""
    parts = text.split(".")
    if len(parts) != partitions:
        raise BadPosition(f"must hold one offset for each of the {partitions} partitions")
    if not all(_OFFSET.fullmatch(p) for p in parts):
        raise BadPosition("each offset must be a whole number of at most 18 digits")
    return [int(p) for p in parts]


@dataclass(frozen=True)
class FeedRecord:
    """One record of ``hub.alerts``: an alert raised or escalated, or a tombstone (erased)."""

    partition: int
    offset: int
    alert_id: str
    alert: Alert | None  # None: the alert was erased


@dataclass(eq=False)
class Subscription:
    """One stream's share of the feed: records from ``start`` (the feed's positions when it
    subscribed), in offset order per partition."""

    start: list[int]
    queue: asyncio.Queue[FeedRecord | None] = field(default_factory=asyncio.Queue)

    def end(self) -> None:
        """End the subscription's records (the feed stopped, or its stream did)."""
        self.queue.put_nowait(None)


class AlertFeed:
    """A worker's shared reader of ``hub.alerts`` (module docstring)."""

    def __init__(self, settings: Settings, serde: Serde, topic: str) -> None:
        self.settings, self.serde, self.topic = settings, serde, topic
        self.partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        self.positions: list[int] = []
        self.recipients: dict[str, tuple[str, ...]] = {}  # alert id → who was told
        self.erased: set[str] = set()  # alert ids whose last record read is a tombstone
        self._subscribers: set[Subscription] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def subscribe(self) -> Subscription:
        """A new subscription to every record from now on (the feed starts on first use)."""
        async with self._starting:
            if self._task is None:
                await self._start()
        subscription = Subscription(list(self.positions))
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop handing records to ``subscription``."""
        self._subscribers.discard(subscription)

    async def close(self) -> None:
        """Stop reading and end every subscription (a worker stopping: streams end)."""
        for subscription in list(self._subscribers):
            subscription.end()
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def missed(self, since: Sequence[int], until: Sequence[int]) -> list[FeedRecord]:
        """The records from ``since`` up to ``until`` (a subscription's start), read with a
        consumer of their own: each alert's last record only (``latest_of_each``)."""
        wanted = [tp for tp in self.partitions if since[tp.partition] < until[tp.partition]]
        if not wanted:
            return []
        consumer = self._consumer_for()
        await consumer.start()
        found: list[FeedRecord] = []
        try:
            consumer.assign(wanted)
            for tp in wanted:
                consumer.seek(tp, since[tp.partition])
            while wanted:
                batches = await consumer.getmany(*wanted, timeout_ms=1000)
                for tp, messages in batches.items():
                    for message in messages:
                        if message.offset < until[tp.partition]:
                            found += await self._read([message])
                wanted = [tp for tp in wanted if await consumer.position(tp) < until[tp.partition]]
        finally:
            await consumer.stop()
        return latest_of_each(found)

    async def _start(self) -> None:
        consumer = self._consumer = self._consumer_for()
        await consumer.start()
        consumer.assign(self.partitions)
        await consumer.seek_to_end(*self.partitions)
        self.positions = [await consumer.position(tp) for tp in self.partitions]
        self._task = asyncio.create_task(self._run(consumer), name="placehub-alert-feed")

    def _consumer_for(self) -> AIOKafkaConsumer:
        return reader(self.settings, auto_offset_reset="earliest", fetch_max_wait_ms=20)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        async for batches in tail(consumer, "alert feed"):
            for tp, messages in sorted(batches.items(), key=lambda b: b[0].partition):
                for record in await self._read(messages):
                    self._hand_out(record)
                self.positions[tp.partition] = messages[-1].offset + 1

    def _hand_out(self, record: FeedRecord) -> None:
        for subscription in list(self._subscribers):
            if subscription.queue.qsize() >= QUEUE_MAX:  # too slow: it resumes from its id
                self._subscribers.discard(subscription)
                subscription.end()
            else:
                subscription.queue.put_nowait(record)

    async def _read(self, messages: Sequence[ConsumerRecord[bytes, bytes]]) -> list[FeedRecord]:
        found: list[FeedRecord] = []
        unreadable = 0
        for message in messages:
            key, value = message.key, message.value
            if key is None:
                unreadable += 1
                continue
            alert_id = key.decode()
            alert: Alert | None = None
            if value is not None:
                if self.serde.needs_lookup(value):  # a registry read: blocking
                    await asyncio.to_thread(self.serde.lookup, value)
                try:
                    alert = self.serde.decode(value, Alert)
                except InputError:
                    unreadable += 1
                    continue
                self.recipients[alert_id] = tuple(alert.recipients)
                self.erased.discard(alert_id)
            else:
                self.erased.add(alert_id)
            found.append(FeedRecord(message.partition, message.offset, alert_id, alert))
        if unreadable:
            log.warning("%s: %d records are not alerts", self.topic, unreadable)
        return found


def latest_of_each(records: Sequence[FeedRecord]) -> list[FeedRecord]:
    """Each alert's last record only (what compaction will leave): a stream catching up
    gets the alert as it stands, or only its erasure, not every step in between."""
    last = {r.alert_id: r for r in records}
    return sorted(last.values(), key=lambda r: (r.partition, r.offset))


@dataclass
class Cursor:
    """Where one stream stands: each partition's next offset (its ``Last-Event-ID``)."""

    offsets: list[int]

    @property
    def id(self) -> str:
        return encode_position(self.offsets)

    def catch_up(self, offsets: Sequence[int]) -> None:
        """Move to ``offsets`` where they are further on (what was missed has been read)."""
        self.offsets = [max(a, b) for a, b in zip(self.offsets, offsets, strict=True)]

    def take(self, records: Sequence[FeedRecord]) -> list[tuple[FeedRecord, str]]:
        """The records new to the stream, each with its id once past it."""
        taken = []
        for record in records:
            if self.passes(record):
                taken.append((record, self.id))
        return taken

    def passes(self, record: FeedRecord) -> bool:
        """Whether ``record`` is new to the stream (and then the cursor moves past it)."""
        if record.offset < self.offsets[record.partition]:
            return False
        self.offsets[record.partition] = record.offset + 1
        return True


async def live_batches(
    subscription: Subscription, cursor: Cursor, most: int = BATCH_MAX
) -> AsyncIterator[list[tuple[FeedRecord, str]]]:
    """The live records of ``subscription`` new to ``cursor``, each once, with the stream's
    id after it: what has arrived (up to ``most``) at a time, until the subscription ends."""
    while (first := await subscription.queue.get()) is not None:
        records = [first]
        while len(records) < most and not subscription.queue.empty():
            record = subscription.queue.get_nowait()
            if record is None:
                yield cursor.take(records)
                return
            records.append(record)
        if taken := cursor.take(records):
            yield taken
