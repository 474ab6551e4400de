"""Staged table writes: a batch's changes to a Faust table, applied and logged together.

A Faust table sends one changelog record per assignment, through its producer buffer,
and that per-record cost dominated the hub's workers. An agent that works in batches
stages its writes here (reads see them) and flushes once per batch: the last value of
each key goes into the table's store and is appended to the changelog, once per batch.

The changelog records are the bytes Faust itself would write (the table's own
serialisers), to the partition Faust would pick (the partition of the record being
processed), so recovery and standbys read them as usual. They go through the aiokafka
producer Faust owns, which Faust flushes before it commits offsets: a batch's state is
in Kafka before the records that caused it are marked done.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.streams import _current_event
from faust.types import AppT, EventT

__all__ = [
    "FaustTable",
    "PartitionStages",
    "Record",
    "StagedTable",
    "as_current",
    "send_records",
]

_DELETED: Any = object()

# A faust Table or GlobalTable (their type stubs lack ``data`` and the serialisers).
FaustTable = Any


@contextlib.contextmanager
def as_current(event: EventT[Any]) -> Iterator[None]:
    """Make ``event`` Faust's current event (table writes take their partition from it).

    Needed inside ``Stream.take_events`` batches, where Faust's current event is only the
    last one buffered.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _aiokafka_producer(app: AppT) -> Any:
    # Faust's own producer: Consumer.commit flushes it before committing offsets.
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers


async def send_records(app: AppT, topic: str, partition: int, records: list[Record]) -> None:
    """Queue ``records`` for ``topic``/``partition`` (appended to the producer's open batch).

    Appending per record, not ``send_batch``: aiokafka's ``send_batch`` waits until the
    partition's pending batch has gone, and with one request in flight per broker that
    stalled the agents for a round trip on every flush.
    """
    producer = _aiokafka_producer(app)
    for key, value, headers in records:
        await producer.send(topic, value, key=key, partition=partition, headers=headers)


class StagedTable(MutableMapping[Any, Any]):
    """A view of ``table`` whose writes wait for :meth:`flush` (values are never None)."""

    def __init__(self, table: FaustTable) -> None:
        self.table = table
        self.changes: dict[Any, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        value = self.changes[key] if key in self.changes else self.table.get(key)
        if value is None or value is _DELETED:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        assert value is not None, "tables here never hold None"
        self.changes[key] = value

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError if absent, like a dict
        self.changes[key] = _DELETED

    def __iter__(self) -> Iterator[Any]:
        changed = {k for k, v in self.changes.items() if v is not _DELETED}
        gone = {k for k, v in self.changes.items() if v is _DELETED}
        yield from changed
        yield from (k for k in self.table if k not in changed and k not in gone)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    async def flush(self, event: EventT[Any]) -> None:
        """Apply the staged changes: to the store, and to the changelog partition of ``event``."""
        if not self.changes:
            return
        table, topic = self.table, self.table.changelog_topic
        records: list[Record] = []
        with as_current(event):  # on-disk stores pick the partition from it
            for key, value in self.changes.items():
                raw_key, _ = topic.prepare_key(key, table.key_serializer)
                if value is _DELETED:
                    table.data.pop(key, None)
                    records.append((raw_key, None, []))
                else:
                    table.data[key] = value
                    raw_value, _ = topic.prepare_value(value, table.value_serializer)
                    records.append((raw_key, raw_value, []))
        self.changes = {}
        await send_records(table.app, topic.get_topic_name(), event.message.partition, records)


class PartitionStages:
    """Staged writes to one table from records of several partitions (a ``take_events``
    batch): one stage per partition, each flushed with a record of its partition."""

    def __init__(self, table: FaustTable) -> None:
        self.table = table
        self._stages: dict[int, tuple[EventT[Any], StagedTable]] = {}

    def stage(self, event: EventT[Any]) -> StagedTable:
        """The stage for the partition ``event`` was read from."""
        partition = event.message.partition
        found = self._stages.get(partition)
        staged = found[1] if found else StagedTable(self.table)
        self._stages[partition] = (event, staged)
        return staged

    async def flush(self) -> None:
        for event, staged in self._stages.values():
            await staged.flush(event)
        self._stages = {}
