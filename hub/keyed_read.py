"""Reading one key's records from a topic keyed by it: a person's audit trail, a partner's
break-glass reads.

Both topics are keyed so that everything about one key is on one partition, and both are
read to the end the partition had when the request came in, on the event loop (aiokafka),
with any registry lookup a record needs done in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.batch import partition_for
from hub.config import Settings
from hub.errors import BrokerError, InputError
from hub.models import AvroRecord
from hub.serde import Serde

__all__ = ["read_key"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroRecord)


async def read_key(
    settings: Settings, serde: Serde, topic: str, key: bytes, model: type[M], timeout_s: float
) -> list[M]:
    """Every ``model`` record keyed ``key`` on ``topic``, up to its partition's end at the
    call, in offset order; records that are not a ``model`` are counted in the log.
    BrokerError if that end is not reached within ``timeout_s``."""
    partition = TopicPartition(topic, partition_for(key, settings.partitions))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    found: list[M] = []
    unreadable = 0
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        deadline = time.monotonic() + timeout_s
        while await consumer.position(partition) < end:
            if time.monotonic() > deadline:
                raise BrokerError(f"{topic}: not read to its end in {timeout_s} s")
            batches = await consumer.getmany(partition, timeout_ms=1000)
            for message in batches.get(partition, []):
                if message.offset >= end or message.key != key or message.value is None:
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
        log.warning("%s: %d records of one key are not %s", topic, unreadable, model.__name__)
    return found
