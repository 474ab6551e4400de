"""Identity alone: the serial identity stage's own rate, fed pre-built batches (issue 15's
"identity is never the cap").

Identity reads one partition (a person's tokens must all be joined in one place), so no
number of workers makes it faster: the pipeline per worker must stay well below it. Method:
the pipeline's own event records (the SDK's bytes) are decoded once and packed into the
batch records the gate sends (``hub.stages.hops.to_identity``: up to 512 KiB each), grouped
the way the gate would take them (``Settings.batch_max`` records a batch). Then, with the
clock running, ``IdentityStage.process`` decides each batch against in-memory tables (plain
dicts carrying every batch's writes into the next, as the stores would) and its output
records are encoded; Kafka, Faust and the deliveries are left out, which is the point: this
is the ceiling the stage's own work puts on the chain. Events/s is events over the time in
``process``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hub import batch
from hub.agreements import AgreementBook
from hub.config import Settings
from hub.models import PartnerEvent, utc_now
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.context import Context, Internal
from hub.stages.effects import Record, State
from hub.stages.hops import event_item, to_identity
from hub.stages.identity import IdentityStage
from hub.topics import Topics
from tests.bench.harness import Record as Produced

__all__ = ["identity_rate"]


def identity_rate(settings: Settings, events: Sequence[Produced]) -> float:
    """Events/s through ``IdentityStage.process`` alone, fed the gate's batch records."""
    registry = SchemaRegistry(settings)
    try:
        serde = Serde(registry)
        ctx = Context(
            topics=Topics(settings.topic_prefix),
            internal=Internal(settings.app_id),
            partitions=settings.partitions,
            serde=serde,
            agreements=AgreementBook([]),
            consent_retention=timedelta(days=365),
            quarantine_hold=timedelta(days=7),
        )
        batches = _batches(ctx, events, settings.batch_max)
        stage = IdentityStage(ctx)
        tables: dict[str, dict[Any, Any]] = {name: {} for name in stage.tables}
        spent = 0.0
        for records in batches:
            state = State.of(tables)
            started = time.perf_counter()
            stage.process(records, state, utc_now())
            spent += time.perf_counter() - started
            for name, staged in state.tables.items():
                for _, key, value in staged.writes():
                    if value is None:
                        tables[name].pop(key, None)
                    else:
                        tables[name][key] = value
        return len(events) / spent
    finally:
        registry.close()


def _batches(ctx: Context, events: Sequence[Produced], per_batch: int) -> list[list[Record]]:
    """The gate's batch records for ``events``, ``per_batch`` partner records a batch."""
    batches = []
    offset = 0
    for start in range(0, len(events), per_batch):
        items = []
        for i, (topic, _, value) in enumerate(events[start : start + per_batch], start):
            event = ctx.serde.decode(value, PartnerEvent)
            source = f"{ctx.topics.prefix}{topic}:0:{i}"  # the bench names topics unprefixed
            items.append(event_item(event, value, source))
        records = []
        for out in to_identity(ctx, items):
            records.append(Record(out.topic, 0, offset, None, out.value, {}))
            offset += 1
        batches.append(records)
    assert sum(len(batch.decode(r.value)) for b in batches for r in b) == len(events)
    return batches
