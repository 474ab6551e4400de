"""Reading a contract topic on request: one key's records (a person's audit trail, a
partner's break-glass reads: keyed so that everything about one key is on one partition)
or a whole small topic (the alert feedback).

Read to the end the partitions had when the request came in, on the event loop (aiokafka),
with any registry lookup a record needs done in a thread.

Also the pieces of a worker's long-running readers of a whole topic (the live alert feed,
the alert statuses): ``reader`` (no group, nothing committed: each worker reads it all)
and ``tail``, their batches, which outlives a broker hiccup rather than ending the reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.batch import partition_for
from hub.config import Settings
from hub.errors import BrokerError, InputError
from hub.kafka_clients import aiokafka_options
from hub.models import AvroRecord
from hub.serde import Serde

__all__ = ["read_all", "read_key", "reader", "tail"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroRecord)


async def read_key(
    settings: Settings, serde: Serde, topic: str, key: bytes, model: type[M], timeout_s: float
) -> list[M]:
    """Every ``model`` record keyed ``key`` on ``topic``, up to its partition's end at the
    call, in offset order; records that are not a ``model`` are counted in the log.
    BrokerError if that end is not reached within ``timeout_s``."""
    partition = TopicPartition(topic, partition_for(key, settings.partitions))
    return await _read(settings, serde, [partition], key, model, timeout_s)


async def read_all(
    settings: Settings,
    serde: Serde,
    topic: str,
    model: type[M],
    timeout_s: float,
    since_ms: int | None = None,
) -> list[M]:
    """Every ``model`` record on ``topic`` (all partitions) up to their ends at the call;
    with ``since_ms``, only from the first record whose Kafka timestamp is at or after it
    (epoch milliseconds), so a listing of recent records skips the older ones unread."""
    partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
    return await _read(settings, serde, partitions, None, model, timeout_s, since_ms)


async def _read(
    settings: Settings,
    serde: Serde,
    partitions: list[TopicPartition],
    key: bytes | None,
    model: type[M],
    timeout_s: float,
    since_ms: int | None = None,
) -> list[M]:
    consumer = reader(settings)
    await consumer.start()
    found: list[M] = []
    unreadable = 0
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        if since_ms is not None:
            firsts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            for tp, first in firsts.items():  # None: nothing that recent on tp
                consumer.seek(tp, ends[tp] if first is None else first.offset)
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise BrokerError(f"{partitions[0].topic}: not read to its end in {timeout_s} s")
            batches = await consumer.getmany(*partitions, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends[tp] or message.value is None:
                        continue
                    if key is not None and message.key != key:
                        continue
                    if serde.needs_lookup(message.value):  # a registry read: blocking
                        await asyncio.to_thread(serde.lookup, message.value)
                    try:
                        found.append(serde.decode(message.value, model))
                    except InputError:  # not a model record (one written before it was)
                        unreadable += 1
    finally:
        await consumer.stop()
    if unreadable:
        topic = partitions[0].topic
        log.warning("%s: %d records are not %s", topic, unreadable, model.__name__)
    return found


def reader(settings: Settings, **options: Any) -> AIOKafkaConsumer:
    """A consumer of no group that commits nothing: it reads what it is assigned."""
    return AIOKafkaConsumer(
        **aiokafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        **options,
    )


async def tail(
    consumer: AIOKafkaConsumer, name: str
) -> AsyncIterator[dict[TopicPartition, list[Any]]]:
    """Each batch ``consumer`` fetches (empty ones too), for good: a failed fetch (a broker
    hiccup; aiokafka reconnects) is logged under ``name`` and tried again a second later."""
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=1000)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: read failed (%s); retrying", name, type(exc).__name__)
            await asyncio.sleep(1)
            continue
        yield batches
