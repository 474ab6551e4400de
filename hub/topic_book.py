"""A worker's in-memory copy of whole small topics (the alert statuses and feedback, the
published pattern cells), read from the beginning for good.

Each worker reads them all with one aiokafka reader of its own (no group, nothing
committed: ``hub.keyed_read.reader`` and ``tail``), so any worker can answer. Before an
answer the book reaches the ends the partitions had when it was asked (``caught_up``), so
it holds everything written before the request. What a record means is the subclass's
``note``; a record it cannot read is left out and logged, never a reason to stop reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from typing import Any, Self, TypeVar, cast

from aiohttp.web import Application
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from hub.app import Hub
from hub.errors import BrokerError, InputError
from hub.keyed_read import reader, tail
from hub.models import AvroRecord

__all__ = ["CATCH_UP_S", "TopicBook"]

log = logging.getLogger(__name__)

CATCH_UP_S = 10.0  # how long a read waits for the book to reach the topics' ends

M = TypeVar("M", bound=AvroRecord)

_BOOKS: weakref.WeakKeyDictionary[Hub, dict[type[Any], Any]] = weakref.WeakKeyDictionary()


class TopicBook:
    """Every record of ``topics`` as ``note`` keeps it (module docstring)."""

    name = "topic book"  # in logs, errors and the reading task's name

    def __init__(self, hub: Hub, topics: tuple[str, ...]) -> None:
        self.hub = hub
        n = hub.settings.partitions
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(n)]
        self.read_to: dict[TopicPartition, int] = {}  # every offset before it noted
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._read = asyncio.Event()  # set after each batch

    @classmethod
    def of(cls, hub: Hub) -> Self:
        """The hub's book of this kind (made on first use; it reads once first asked to)."""
        books = _BOOKS.setdefault(hub, {})
        if cls not in books:
            books[cls] = cls(hub)  # type: ignore[call-arg]  # subclasses take the hub only
        book: Self = books[cls]
        return book

    async def caught_up(self) -> None:
        """Return once the book has read the topics to the ends they had at the call
        (``BrokerError`` if not within ``CATCH_UP_S``)."""
        async with self._starting:
            if self._consumer is None:
                await self._start()
        consumer = self._consumer
        assert consumer is not None
        ends = await consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + CATCH_UP_S
        while True:
            self._read.clear()
            if all(self.read_to.get(tp, 0) >= end for tp, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"the {self.name} was not read to its end in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._read.wait(), timeout=1)

    def close_with_web_server(self) -> None:
        """Stop reading when the worker's web server shuts down."""

        async def close(_: Application) -> None:
            await self.close()

        cast(AiohttpWeb, self.hub.app.web).web_app.on_shutdown.append(close)

    async def close(self) -> None:
        """Stop reading (the worker is stopping)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def note(self, message: ConsumerRecord[bytes, bytes]) -> None:
        """Keep what ``message`` says (a subclass's business)."""
        raise NotImplementedError

    async def decoded(self, message: ConsumerRecord[bytes, bytes], model: type[M]) -> M | None:
        """``message``'s value as a ``model``, or None (a tombstone, or not readable:
        logged)."""
        value, serde = message.value, self.hub.serde
        if value is None:
            return None
        if serde.needs_lookup(value):  # a registry read: blocking
            await asyncio.to_thread(serde.lookup, value)
        try:
            return serde.decode(value, model)
        except InputError:
            log.warning("%s: a record on %s is not readable; skipped", self.name, message.topic)
            return None

    async def _start(self) -> None:
        consumer = reader(self.hub.settings, fetch_max_wait_ms=20)
        await consumer.start()
        consumer.assign(self.partitions)
        await consumer.seek_to_beginning(*self.partitions)
        self._consumer = consumer
        task_name = f"placehub-{self.name.replace(' ', '-')}"
        self._task = asyncio.create_task(self._run(consumer), name=task_name)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        async for batches in tail(consumer, self.name):
            for messages in batches.values():
                for message in messages:
                    await self.note(message)
            # Everything before a partition's position is noted now (gaps included).
            for tp in self.partitions:
                self.read_to[tp] = await consumer.position(tp)
            self._read.set()
