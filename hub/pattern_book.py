"""A worker's copy of ``hub.patterns``: every published cell, already disclosure-controlled.

The topic is compacted and small (a few hundred cells a window), so every worker keeps all
of it in memory: one aiokafka reader (no group, nothing committed) from the beginning, for
good (``hub.keyed_read.tail``). A read first lets it reach the ends the partitions had
(``current``), so an answer holds every cell published before it was asked for. The
patterns stage published these values; the book never sees a true count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from hub.app import Hub
from hub.errors import BrokerError, InputError
from hub.keyed_read import reader, tail
from hub.models import PatternCell

__all__ = ["CATCH_UP_S", "PatternBook", "pattern_book"]

log = logging.getLogger(__name__)

CATCH_UP_S = 10.0  # how long a read waits for the book to reach the topic's ends


class PatternBook:
    """Every cell on ``hub.patterns``, by its key (module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.cells: dict[str, PatternCell] = {}
        n = hub.settings.partitions
        self.partitions = [TopicPartition(hub.topics.patterns, p) for p in range(n)]
        self.read_to: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._read = asyncio.Event()  # set after each batch

    async def current(self) -> dict[str, PatternCell]:
        """The cells, once the book has read to the ends the topic had at the call
        (``BrokerError`` if not within ``CATCH_UP_S``)."""
        async with self._starting:
            if self._consumer is None:
                await self._start()
        consumer = self._consumer
        assert consumer is not None
        ends = await consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + CATCH_UP_S
        while not all(self.read_to.get(tp, 0) >= end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise BrokerError("hub.patterns was not read to its end in time")
            self._read.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._read.wait(), timeout=1)
        return self.cells

    async def close(self) -> None:
        """Stop reading (the worker is stopping)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _start(self) -> None:
        consumer = reader(self.hub.settings, fetch_max_wait_ms=20)
        await consumer.start()
        consumer.assign(self.partitions)
        await consumer.seek_to_beginning(*self.partitions)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="placehub-pattern-book")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        async for batches in tail(consumer, "pattern book"):
            for messages in batches.values():
                for message in messages:
                    await self._note(message)
            for tp in self.partitions:  # everything before the position is noted now
                self.read_to[tp] = await consumer.position(tp)
            self._read.set()

    async def _note(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.key is None:
            return
        key = message.key.decode()
        if message.value is None:
            self.cells.pop(key, None)
            return
        serde = self.hub.serde
        if serde.needs_lookup(message.value):  # a registry read: blocking
            await asyncio.to_thread(serde.lookup, message.value)
        try:
            self.cells[key] = serde.decode(message.value, PatternCell)
        except InputError:  # not a cell this worker can read: left out, and logged
            log.warning("pattern book: a record is not a PatternCell")


_BOOKS: weakref.WeakKeyDictionary[Hub, PatternBook] = weakref.WeakKeyDictionary()


def pattern_book(hub: Hub) -> PatternBook:
    """The hub's ``PatternBook`` (made on first use; it reads once first asked to)."""
    if hub not in _BOOKS:
        _BOOKS[hub] = PatternBook(hub)
    return _BOOKS[hub]
