"""The stage runtime: the only code that runs a stage against Faust and aiokafka.

For each batch a stage's agent takes from its stream, ``StageRunner``:

1. turns Faust's events into plain ``Record``s and loads any schema the batch needs from
   the registry off the event loop;
2. calls the stage's pure ``process(records, state, now)``;
3. delivers the effects in the phases ``Stage.writes`` orders, each awaited before the
   next: output records (dead letters and audit records included) before the state that
   says they went (released holds, merged identities), fates before the rows that stop
   holding a record. A crash between phases leaves state that replaying the batch
   repairs (outputs that went out twice are re-sent copies, never losses);
4. only then writes the tables' stores (with the changelog offsets, so an on-disk store
   knows what it holds) and returns, which lets Faust ack the batch's records.

The last phase is the stage's *marks*: per input partition, the offsets whose state has
landed, as ranges (``hub.stages.offsets``). Records in them (read again after a crash,
because Faust had not yet committed their offsets, or after the watchdog rewound a
partition) are acked without being processed again, so state is applied once per record
whatever order records come in: a replayed merge cannot bring back a person that has since
moved on, and a record Faust delivered late is not taken for one already done.

A delivery that fails is retried with backoff until it succeeds; meanwhile the stage is
reported stalled (``/v1/health`` answers 503 naming it and the error class) and nothing of
the batch is acked or marked done, so its offsets are never committed past (commits follow
the marks: ``hub.runtime.commits``; a batch cancelled as the worker stops, which Faust's
``take_events`` acks in a ``finally`` block, is not committed either). The runner never
lets an exception out of the agent: Faust does not restart a crashed agent.

Faust and aiokafka internals relied on (each guarded by ``tests/unit/test_runtime_faust.py``):

- ``faust.streams._current_event``: the context variable an on-disk store reads the
  partition of a write from;
- ``Producer._ensure_producer()``: the driver's ``AIOKafkaProducer``, whose ``send``
  returns a future per record;
- ``Table.data`` (the store) and ``Store.set_persisted_offset``; ``Table.changelog_topic``
  with ``prepare_key``/``prepare_value`` and the table's serialisers (the changelog bytes
  Faust itself would write);
- ``Stream.take_events`` acking its events once the agent asks for the next batch (after
  ``run`` has written the marks: Faust's acks past the marks mean a skip);
- the consumer's ``_committed_offset`` (``Stores.committed``): below it, marks fold into one
  range.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, Protocol, TypeVar, cast

import faust
from faust.streams import _current_event
from faust.types import TP, AppT, EventT

from hub import batch
from hub.models import utc_now
from hub.runtime.commits import as_ranges, mark_key
from hub.serde import Serde
from hub.stages import offsets
from hub.stages.effects import OUTPUTS, Effects, Output, Record, State

__all__ = ["Health", "Stage", "StageRunner", "Stores", "producer_of"]

log = logging.getLogger(__name__)

# Faust table (its type stubs lack ``data`` and the serialisers).
FaustTable = Any

BACKOFF_S = (0.5, 1, 2, 5, 10, 30)

T = TypeVar("T")

MARKS = "marks"  # the table of each stage's last offset done, per input partition


class Stage(Protocol):
    """A pure batch function over named tables (``hub.stages``)."""

    name: str
    tables: tuple[str, ...]  # every table it reads or writes
    # The order its effects must land in, a phase a group: table names, and OUTPUTS for its
    # output records (first, unless a group names them).
    writes: tuple[tuple[str, ...], ...]

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects: ...


@dataclass
class Health:
    """What the runner knows of each stage: stalled ones and why (error class only)."""

    stalled: dict[str, str] = field(default_factory=dict)


def producer_of(app: AppT) -> Any:
    """Faust's own aiokafka producer (what Faust flushes before it commits offsets)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


@dataclass
class Stores:
    """Everything a runner needs besides its stage: the app, tables by name, the codec."""

    app: AppT
    tables: Mapping[str, FaustTable]
    serde: Serde
    dlq_topic: str
    audit_topic: str
    partitions: int
    batch_max: int
    batch_within_s: float
    health: Health
    count: Callable[[str, tuple[str, ...], int], None]  # Metrics.count
    observe: Callable[[str, tuple[str, ...], float], None]  # Metrics.observe
    committed: Callable[[TP], int | None] = lambda tp: None  # the consumer's committed offset


class StageRunner:
    """Runs one stage as a Faust agent (module docstring)."""

    def __init__(self, stage: Stage, stores: Stores) -> None:
        self.stage = stage
        self.stores = stores
        # Every stage also keeps its marks: the last offset it finished, per partition.
        self.tables = (*stage.tables, MARKS)
        self.writes = (*stage.writes, (MARKS,))

    async def agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """The Faust agent body: batches in, effects delivered, then the batch acked."""
        take = cast(faust.Stream[bytes], stream).take_events
        async for events in take(self.stores.batch_max, within=self.stores.batch_within_s):
            await self.run(events)
            yield None

    async def run(self, events: Sequence[EventT[bytes]]) -> None:
        """Process one batch and deliver its effects (retrying until they are delivered).

        Records at or below the stage's mark for their partition were processed before a
        crash and their state landed: they are acked without being processed again.
        Nothing raises out of here: an error the runner cannot retry holds the batch unacked
        (the stage is reported stalled) until the worker is restarted.
        """
        try:
            records = self._unprocessed([_record(event) for event in events])
        except Exception:
            await self._hold("reading the stage's marks")
        if not records:
            return
        await self._until_done("loading schemas", lambda: self._load_schemas(records))
        try:
            state = State.of({name: self.stores.tables[name] for name in self.tables})
            effects = self.stage.process(records, state, utc_now())
            self._mark(records, state)
            phases = self._phases(effects, state)
        except Exception:  # a bug in a stage or the runner: never let it ack the batch
            await self._hold("processing a batch")
        sending = time.perf_counter()
        offsets = await self._until_done(
            "delivery", lambda: self._deliver([phase for phase in phases if phase])
        )
        delivery_s = time.perf_counter() - sending
        try:
            self._apply(state, offsets)
            for (name, labels), n in effects.metrics.items():
                self.stores.count(name, labels, n)
            for name, labels, value in effects.observations:
                self.stores.observe(name, labels, value)
            stage = (self.stage.name,)
            self.stores.observe("placehub_stage_batch_records", stage, len(records))
            self.stores.observe("placehub_stage_delivery_seconds", stage, delivery_s)
        except Exception:  # delivered but not stored: a restart recovers it from Kafka
            await self._hold("writing the tables' stores")

    def _mark_key(self, topic: str, partition: int) -> str:
        return mark_key(self.stage.name, topic, partition)

    def _unprocessed(self, records: list[Record]) -> list[Record]:
        """``records`` the stage's marks do not list as done (``hub.stages.offsets``)."""
        marks = self.stores.tables[MARKS]
        ranges: dict[tuple[str, int], Any] = {}
        for record in records:
            tp = (record.topic, record.partition)
            if tp not in ranges:
                ranges[tp] = as_ranges(marks.get(self._mark_key(*tp)))
        return [r for r in records if not offsets.done(ranges[r.topic, r.partition], r.offset)]

    def _mark(self, records: Sequence[Record], state: State) -> None:
        """Add the batch's offsets to each partition's done ranges: written last, so a mark
        that landed means every other write of the batch did too. What lies below the
        partition's committed offset folds into one range."""
        batch_offsets: dict[tuple[str, int], list[int]] = {}
        for record in records:
            batch_offsets.setdefault((record.topic, record.partition), []).append(record.offset)
        marks = state[MARKS]
        for (topic, partition), done in batch_offsets.items():
            key = self._mark_key(topic, partition)
            marks.partition = partition
            floor = self.stores.committed(TP(topic, partition))
            marks[key] = offsets.with_done(as_ranges(marks.get(key)), done, floor)

    async def _until_done(self, doing: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until it succeeds, backing off; the stage is stalled meanwhile."""
        tries = 0
        while True:
            try:
                result = await attempt()
            except Exception as exc:  # any failure: nothing of the batch is acked
                delay = BACKOFF_S[min(tries, len(BACKOFF_S) - 1)]
                self.stores.health.stalled[self.stage.name] = type(exc).__name__
                log.error(
                    "stage %s: %s failed (%s); retrying in %.1f s, nothing acked",
                    self.stage.name,
                    doing,
                    type(exc).__name__,
                    delay,
                )
                tries += 1
                await asyncio.sleep(delay)
                continue
            self.stores.health.stalled.pop(self.stage.name, None)
            return result

    async def _hold(self, doing: str) -> NoReturn:
        """Keep the batch unacked for good: the error is not one a retry can mend."""
        log.exception("stage %s failed %s; it stops here until restarted", self.stage.name, doing)
        self.stores.health.stalled[self.stage.name] = f"failed {doing} (see the log)"
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def _load_schemas(self, records: Sequence[Record]) -> None:
        """Read the writer schemas the batch needs from the registry in a thread (its
        Kafka reads are blocking); the stage then decodes from the cache."""
        serde = self.stores.serde
        framed = getattr(self.stage, "framed", None)  # values inside a stage's batch records
        values = framed(records) if framed else (r.value for r in records)
        for value in {v for v in values if serde.needs_lookup(v)}:
            await asyncio.to_thread(serde.lookup, value)

    def _outputs(self, effects: Effects) -> list[Output]:
        serde, n = self.stores.serde, self.stores.partitions
        outputs = list(effects.outputs)
        for letter in effects.dead_letters:
            key = f"{letter.source_topic}:{letter.source_partition}".encode()
            value = serde.encode(letter, f"{self.stores.dlq_topic}-value")
            outputs.append(Output(self.stores.dlq_topic, batch.partition_for(key, n), key, value))
        for audit in effects.audits:
            key = (audit.person_id or audit.action).encode()
            value = serde.encode(audit, f"{self.stores.audit_topic}-value")
            outputs.append(Output(self.stores.audit_topic, batch.partition_for(key, n), key, value))
        return outputs

    def _phases(self, effects: Effects, state: State) -> list[list[Output]]:
        """The batch's records in the order ``Stage.writes`` gives, a phase per group: the
        output records (``OUTPUTS``; first unless a group names them) and the tables'
        changelog records, the bytes Faust itself would send."""
        groups = self.writes
        if not any(OUTPUTS in group for group in groups):
            groups = ((OUTPUTS,), *groups)
        written = {name for group in groups for name in group}
        assert all(name in written for name in self.tables if state[name].changes)
        phases = []
        for group in groups:
            phase = []
            for name in group:
                if name == OUTPUTS:
                    phase += self._outputs(effects)
                    continue
                table = self.stores.tables[name]
                topic = table.changelog_topic
                for partition, key, value in state[name].writes():
                    raw_key, _ = topic.prepare_key(key, table.key_serializer)
                    raw_value = None
                    if value is not None:
                        raw_value, _ = topic.prepare_value(value, table.value_serializer)
                    phase.append(Output(topic.get_topic_name(), partition, raw_key, raw_value))
            phases.append(phase)
        return phases

    async def _deliver(self, phases: list[list[Output]]) -> dict[tuple[str, int], int]:
        """Send each phase and await every record of it before the next.

        Returns the last offset written per (topic, partition).
        """
        offsets: dict[tuple[str, int], int] = {}
        for phase in phases:
            for output, metadata in zip(phase, await self._send(phase), strict=True):
                key = (output.topic, output.partition)
                offsets[key] = max(offsets.get(key, -1), metadata.offset)
        return offsets

    async def _send(self, outputs: Sequence[Output]) -> list[Any]:
        producer = producer_of(self.stores.app)
        futures: list[Awaitable[Any]] = []
        for out in outputs:
            futures.append(
                await producer.send(
                    out.topic,
                    out.value,
                    key=out.key,
                    partition=out.partition,
                    headers=list(out.headers),
                )
            )
        return list(await asyncio.gather(*futures))

    def _apply(self, state: State, offsets: Mapping[tuple[str, int], int]) -> None:
        """Write the delivered changes into the tables' stores, with their offsets."""
        for name in self.tables:
            table = self.stores.tables[name]
            changelog = table.changelog_topic.get_topic_name()
            for partition, key, value in state[name].writes():
                with _writing_to(partition):
                    if value is None:
                        table.data.pop(key, None)
                    else:
                        table.data[key] = value
            for (topic, partition), offset in offsets.items():
                if topic == changelog:
                    with _writing_to(partition):
                        table.data.set_persisted_offset(TP(topic, partition), offset)


@dataclass
class _Message:
    partition: int


class _Event:
    """Stands in for Faust's current event: all a store reads of it is the partition."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


class _writing_to:  # a context manager, named like one
    """Make the current event say ``partition`` (an on-disk store picks its database by it)."""

    def __init__(self, partition: int) -> None:
        self.event = _Event(partition)

    def __enter__(self) -> None:
        self.token = _current_event.set(weakref.ref(cast(Any, self.event)))

    def __exit__(self, *exc: object) -> None:
        _current_event.reset(self.token)


def _record(event: EventT[bytes]) -> Record:
    message = event.message
    headers = dict(cast(list[tuple[str, bytes]], message.headers or []))
    return Record(
        message.topic, message.partition, message.offset, message.key, message.value, headers
    )
