"""The chain alone: every stage's pure ``process``, fed what the stage before it sends, with
no Kafka and no Faust (issue 15's ceiling on "bulk at the peer's pace").

Whatever carries records between stages (Faust's per-record loop today, bulk envelopes or a
batched consumer tomorrow), a worker cannot place events faster than its stages' own Python
work allows. This measures that work, so the chain's ratio to the peer can be read as
transport cost plus stage cost. Method: the stages a worker runs (``hub.app.stage_inputs``,
the worker's own topology, with the bench hub's agreements and alert rules) share one set of
in-memory tables, as the stages of one worker share its Faust tables. The scenario's
consents go to the release stage, then its partner records to the gate in batches of
``Settings.batch_max``; each output record goes to the stage that reads its topic, and
stages take their queued records in the worker's order until none is left. The clock runs
only inside ``process``; schema lookups, table writes, changelog encoding, dead letters,
audits and deliveries are left out, so this is an upper bound on what any transport could
give the chain. Events/s is the events over the time in every stage's ``process``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.app import stage_context, stage_inputs
from hub.config import Settings
from hub.models import utc_now
from hub.partitions import partition_for
from hub.partners import load_partners
from hub.registry import SchemaRegistry
from hub.runtime import Stage
from hub.serde import Serde
from hub.stages.effects import Record, State
from tests.bench.harness import Record as Produced

__all__ = ["Chain", "chain_alone"]


@dataclass
class Chain:
    """The chain's stages alone: events/s, and each stage's seconds in ``process``."""

    events: int
    people: int = 0  # views at the end
    spent: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def rate(self) -> float:
        return self.events / sum(self.spent.values())

    def per_event_us(self) -> dict[str, float]:
        """Each stage's microseconds an event, the slowest first."""
        slowest = sorted(self.spent.items(), key=lambda item: -item[1])
        return {name: s * 1e6 / self.events for name, s in slowest}


def chain_alone(
    settings: Settings, consents: Sequence[Produced], events: Sequence[Produced]
) -> Chain:
    """Run ``consents`` then ``events`` through the stages' ``process`` (module docstring)."""
    registry = SchemaRegistry(settings)
    try:
        serde = Serde(registry)
        partners = [partner.id for partner in load_partners(settings.partners_file)]
        ctx = stage_context(settings, serde, partners)
        inputs = stage_inputs(ctx, partners)
        tables: dict[str, dict[Any, Any]] = {n: {} for s in inputs for n in s.tables}
        run = _Run(inputs, tables, serde, settings.batch_max)
        prefix, n = settings.topic_prefix, settings.partitions
        run.feed(_records(prefix, n, consents))
        run.drain(defaultdict(float))  # consents first, as the bench's scenarios load them
        run.feed(_records(prefix, n, events))
        chain = Chain(len(events))
        run.drain(chain.spent)
        if run.dead_letters or tables["held"]:
            raise RuntimeError(
                f"the chain alone dead-lettered {run.dead_letters} records and held "
                f"{len(tables['held'])} consents' events: its rate would not be the chain's"
            )
        chain.people = len(tables["views"])
        return chain
    finally:
        registry.close()


class _Run:
    """Queued records by stage, and the loop that feeds each stage its own."""

    def __init__(
        self,
        inputs: dict[Stage, tuple[str, ...]],
        tables: dict[str, dict[Any, Any]],
        serde: Serde,
        batch_max: int,
    ) -> None:
        self.stages = list(inputs)
        self.reader = {topic: stage for stage, topics in inputs.items() for topic in topics}
        self.queued: dict[str, deque[Record]] = defaultdict(deque)
        self.tables, self.serde, self.batch_max = tables, serde, batch_max
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.dead_letters = 0

    def feed(self, records: Sequence[Record]) -> None:
        for record in records:
            stage = self.reader.get(record.topic)
            if stage is not None:  # hub.events, patterns, audits: read by no stage
                self.queued[stage.name].append(record)

    def drain(self, spent: defaultdict[str, float]) -> None:
        """Run every stage, in the worker's order, until no stage has records waiting."""
        while any(self.queued.values()):
            for stage in self.stages:
                waiting = self.queued[stage.name]
                while waiting:
                    take = [waiting.popleft() for _ in range(min(self.batch_max, len(waiting)))]
                    self.feed(self._process(stage, take, spent))

    def _process(
        self, stage: Stage, records: list[Record], spent: defaultdict[str, float]
    ) -> list[Record]:
        framed = getattr(stage, "framed", None)
        for value in framed(records) if framed else (r.value for r in records):
            if self.serde.needs_lookup(value):
                self.serde.lookup(value)  # the runtime does this before process, untimed
        state = State.of(self.tables)
        started = time.perf_counter()
        effects = stage.process(records, state, utc_now())
        spent[stage.name] += time.perf_counter() - started
        self.dead_letters += len(effects.dead_letters)
        for name, staged in state.tables.items():
            for _, key, value in staged.writes():
                if value is None:
                    self.tables[name].pop(key, None)
                else:
                    self.tables[name][key] = value
        out = []
        for output in effects.outputs:
            where = (output.topic, output.partition)
            out.append(
                Record(
                    output.topic,
                    output.partition,
                    self.offsets[where],
                    output.key,
                    output.value,
                    dict(output.headers),
                )
            )
            self.offsets[where] += 1
        return out


def _records(prefix: str, partitions: int, produced: Sequence[Produced]) -> list[Record]:
    """The bench's records as a stage reads them (topics prefixed, keyed partitions)."""
    offsets: Counter[tuple[str, int]] = Counter()
    records = []
    for topic, key, value in produced:
        where = (prefix + topic, partition_for(key, partitions))
        records.append(Record(*where, offsets[where], key, value))
        offsets[where] += 1
    return records
