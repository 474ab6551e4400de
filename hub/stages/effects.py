"""What a stage sees and what it asks for: the pure side of the stage runtime.

A stage is ``process(records, state, now) -> Effects``. ``Record`` is one input record as
read from Kafka, ``State`` the stage's tables as this batch sees them (reads see the
batch's own writes), and ``Effects`` everything the batch changes: table writes, output
records, dead letters, audit records and metric increments. The runtime
(``hub.runtime``) carries effects out and lets the batch's offsets be committed only once
every one of them is delivered, so a stage never does I/O and is tested with plain dicts.

``run_each`` gives every record its own savepoint: a record that raises leaves no trace
but a dead letter, so no input can stop a stage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import uuid4

from hub.deadletter import dead_letter
from hub.models import AuditRecord, DeadLetter
from hub.stages.reasons import dead_letter_reason

__all__ = [
    "OUTPUTS",
    "Effects",
    "Metric",
    "Observation",
    "Output",
    "Pending",
    "Record",
    "Refused",
    "Staged",
    "State",
    "Undoable",
    "attempt",
    "audit_record",
    "run_each",
    "value_bytes",
]

_DELETED: Any = object()

# In a stage's ``writes`` (the order its effects must land in): its output records.
OUTPUTS = "outputs"


@dataclass(frozen=True)
class Record:
    """One record a stage reads: where it was, and its raw key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The record's identity, ``topic:partition:offset`` (Kafka topic names have no ':')."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def at(cls, source: str, value: bytes | None) -> Record:
        """The record read at ``source`` (``topic:partition:offset``) that held ``value``."""
        topic, partition, offset = source.rsplit(":", 2)
        return cls(topic, int(partition), int(offset), None, value)


@dataclass(frozen=True)
class Output:
    """A record to produce; ``partition`` is explicit (the hub partitions with murmur2)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


Metric = tuple[str, tuple[str, ...]]  # (metric name, label values)
Observation = tuple[str, tuple[str, ...], float]  # (histogram name, label values, value)


class Staged(MutableMapping[Any, Any]):
    """One table as a batch sees it: reads fall through to ``stored``; writes wait.

    Each write remembers the partition whose changelog it belongs to (the partition of the
    record that caused it, as Faust requires). ``savepoint``/``rollback`` undo the writes of
    one record that failed. Values are never None.
    """

    def __init__(self, stored: Mapping[Any, Any]) -> None:
        self.stored = stored
        self.changes: dict[Any, tuple[Any, int]] = {}
        self.partition = 0  # where the next write goes: set per record by run_each
        self._undo: list[tuple[Any, tuple[Any, int] | None]] = []

    def __getitem__(self, key: Any) -> Any:
        value = self.changes[key][0] if key in self.changes else self.stored.get(key)
        if value is None or value is _DELETED:
            raise KeyError(key)
        return value

    def _write(self, key: Any, value: Any) -> None:
        self._undo.append((key, self.changes.get(key)))
        self.changes[key] = (value, self.partition)

    def __setitem__(self, key: Any, value: Any) -> None:
        assert value is not None, "tables here never hold None"
        self._write(key, value)

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError if absent, like a dict
        self._write(key, _DELETED)

    def __iter__(self) -> Iterator[Any]:
        live = {k for k, (v, _) in self.changes.items() if v is not _DELETED}
        yield from live
        yield from (k for k in self.stored if k not in self.changes)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def savepoint(self) -> int:
        """A mark to roll back to (savepoints nest)."""
        return len(self._undo)

    def rollback(self, mark: int) -> None:
        """Undo every write since ``mark``."""
        while len(self._undo) > mark:
            key, before = self._undo.pop()
            if before is None:
                self.changes.pop(key, None)
            else:
                self.changes[key] = before

    def writes(self) -> Iterator[tuple[int, Any, Any]]:
        """(partition, key, value or None for a delete) for every key the batch changed."""
        for key, (value, partition) in self.changes.items():
            yield partition, key, (None if value is _DELETED else value)


class Undoable(Protocol):
    """Batch state that can be rolled back to a mark (a staged table, a stage's cache)."""

    def savepoint(self) -> int: ...

    def rollback(self, mark: int) -> None: ...


class Pending(list[Any]):
    """A list a batch builds up (work for the next stage) that a failed record's rollback
    also undoes: register it in ``State.extras``."""

    def savepoint(self) -> int:
        return len(self)

    def rollback(self, mark: int) -> None:
        del self[mark:]


@dataclass
class State:
    """The tables a stage reads and writes, by table name (``extras``: other batch state
    that a failed record's rollback must also undo)."""

    tables: dict[str, Staged]
    extras: list[Undoable] = field(default_factory=list)

    def undoables(self) -> list[Undoable]:
        return [*self.tables.values(), *self.extras]

    def __getitem__(self, name: str) -> Staged:
        return self.tables[name]

    @classmethod
    def of(cls, stored: Mapping[str, Mapping[Any, Any]]) -> State:
        """Staged views of ``stored`` (name → mapping: a Faust table, or a dict in tests)."""
        return cls({name: Staged(table) for name, table in stored.items()})

    def at(self, partition: int) -> None:
        for table in self.tables.values():
            table.partition = partition


@dataclass
class Effects:
    """Everything one batch changes, in the order it must happen."""

    outputs: list[Output] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    audits: list[AuditRecord] = field(default_factory=list)
    metrics: Counter[Metric] = field(default_factory=Counter)
    observations: list[Observation] = field(default_factory=list)  # for histograms

    def count(self, name: str, *labels: str, n: int = 1) -> None:
        self.metrics[name, labels] += n

    def observe(self, name: str, *labels: str, value: float) -> None:
        """Observe ``value`` in the histogram ``name`` once the batch is delivered."""
        self.observations.append((name, labels, value))

    def dead_letter(self, record: Record, stage: str, reason: str, now: datetime) -> None:
        """Send ``record`` to the DLQ with why (a bounded prefix if it is huge)."""
        self.count("placehub_dead_letters", stage, dead_letter_reason(reason))
        self.dead_letters.append(
            dead_letter(
                reason=reason,
                stage=stage,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                original=record.value,
                failed_at=now,
            )
        )

    def _marks(self) -> tuple[int, int, int, int, Counter[Metric]]:
        sizes = len(self.outputs), len(self.dead_letters), len(self.audits)
        return *sizes, len(self.observations), self.metrics.copy()

    def _restore(self, marks: tuple[int, int, int, int, Counter[Metric]]) -> None:
        outputs, letters, audits, observed, metrics = marks
        del self.outputs[outputs:], self.dead_letters[letters:], self.audits[audits:]
        del self.observations[observed:]
        self.metrics = metrics


def audit_record(action: str, person_id: str | None, at: datetime) -> AuditRecord:
    """An audit record of something the hub itself did (``actor`` hub, role system)."""
    return AuditRecord(
        audit_id=str(uuid4()),
        at=at,
        actor="hub",
        role="system",
        action=action,
        person_id=person_id,
        outcome="ok",
    )


class Refused(Exception):
    """Raised by a stage's rule when a record cannot be taken; the message is the reason.

    The message is the hub's own words (names, limits, ids), never a value from the record.
    """


def attempt(stage: str, state: State, effects: Effects, work: Callable[[], None]) -> str | None:
    """Run ``work``; if it raises, undo its writes and effects and return why (else None).

    The reason names the stage and the exception's class, never its message: exceptions
    from decoders and models may carry person data. ``Refused`` gives its own reason.
    """
    undoables = state.undoables()
    marks = [undoable.savepoint() for undoable in undoables]
    before = effects._marks()
    try:
        work()
    except Exception as exc:  # no input may stop a stage
        for undoable, mark in zip(undoables, marks, strict=True):
            undoable.rollback(mark)
        effects._restore(before)
        effects.count("placehub_stage_failures", stage)
        if isinstance(exc, Refused):
            return str(exc)
        return f"{stage} could not process the record: {type(exc).__name__}"
    return None


def run_each(
    stage: str,
    records: Iterable[Record],
    state: State,
    effects: Effects,
    now: datetime,
    handle: Callable[[Record], None],
    on_failure: Callable[[Record, str], None] | None = None,
) -> None:
    """Call ``handle`` for each record; one that raises is undone and dead-lettered.

    ``on_failure`` lets a stage give the record's partner a fate for it.
    """
    for record in records:
        state.at(record.partition)
        reason = attempt(stage, state, effects, lambda r=record: handle(r))  # type: ignore[misc]
        if reason is not None:
            effects.dead_letter(record, stage, reason, now)
            if on_failure is not None:
                on_failure(record, reason)


def value_bytes(value: Any) -> int:
    """Roughly what a JSON table value costs in its changelog record (Faust's json codec)."""
    return len(json.dumps(value, separators=(",", ":"), default=str))
