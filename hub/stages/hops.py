"""The internal hops between stages: header names and batch records for identity and views.

Internal topics are not contracts: their records are ``hub.batch`` envelopes, and the
headers below carry only ASCII operation names, reasons and record positions.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from hub import batch
from hub.batch import Op
from hub.errors import DecodeError
from hub.models import PartnerEvent
from hub.stages.context import Context
from hub.stages.effects import Effects, Output, Record, State, attempt

__all__ = [
    "OP",
    "REASON",
    "SOURCE",
    "by_person",
    "each_item",
    "event_item",
    "framed_in",
    "to_identity",
    "to_views",
]

OP = "placehub-op"
REASON = "placehub-reason"
SOURCE = "placehub-source"  # topic:partition:offset of the partner record, for accounting


def event_item(event: PartnerEvent, raw: bytes | None, source: str) -> batch.Item:
    """An admitted event, as work for identity (which needs its tokens, and its consent id
    to drop it if that consent was withdrawn before it arrived)."""
    return batch.Item(
        Op.EVENT,
        event.event_id,
        source=source,
        tokens=event.subject.tokens,
        raw=raw,
        basis=event.basis.consent_id or "",
    )


def to_identity(ctx: Context, items: list[batch.Item]) -> list[Output]:
    """Work for identity, as few batch records as fit (one partition: in order)."""
    return [
        Output(ctx.internal.identity, 0, None, batch.encode(chunk)) for chunk in batch.chunks(items)
    ]


def to_views(ctx: Context, items: list[batch.Item]) -> list[Output]:
    """Work for the views, one batch record per view partition, in order per person."""
    return by_person(ctx, ctx.internal.view, items)


def by_person(ctx: Context, topic: str, items: list[batch.Item]) -> list[Output]:
    """``items`` (keyed by person) on ``topic``, one batch record per partition, in order
    per person, each on its person's partition."""
    by_partition: dict[int, list[batch.Item]] = defaultdict(list)
    for item in items:
        by_partition[batch.partition_for(item.key.encode(), ctx.partitions)].append(item)
    return [
        Output(topic, partition, None, batch.encode(chunk))
        for partition, part in by_partition.items()
        for chunk in batch.chunks(part)
    ]


def framed_in(records: Iterable[Record], topic: str) -> Iterator[bytes | None]:
    """The framed records inside the batch records on ``topic`` (for loading their schemas
    before a stage runs; a batch that cannot be read is the stage's to dead-letter)."""
    for record in records:
        if record.topic != topic:
            continue
        try:
            items = batch.decode(record.value)
        except DecodeError:
            continue
        yield from (item.raw for item in items if item.raw is not None)


def each_item(
    stage: str,
    record: Record,
    state: State,
    effects: Effects,
    handle: Callable[[batch.Item], None],
    refused: Callable[[batch.Item, str], None],
) -> None:
    """Handle every item of a batch record on its own: one that raises is undone and
    ``refused`` with the reason, and the rest of the batch goes on."""
    for item in batch.decode(record.value):
        reason = attempt(stage, state, effects, functools.partial(handle, item))
        if reason is not None:
            refused(item, reason)
