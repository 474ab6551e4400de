"""The internal hops between stages: header names and batch records for identity and views.

Internal topics are not contracts: their records are ``hub.batch`` envelopes, and the
headers below carry only ASCII operation names, reasons and record positions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from hub import batch
from hub.errors import DecodeError
from hub.models import PartnerEvent
from hub.stages.context import Context
from hub.stages.effects import Output, Record

__all__ = ["OP", "REASON", "SOURCE", "event_item", "framed_in", "to_identity", "to_views"]

OP = "placehub-op"
REASON = "placehub-reason"
SOURCE = "placehub-source"  # topic:partition:offset of the partner record, for accounting


def event_item(event: PartnerEvent, raw: bytes | None, source: str) -> batch.Item:
    """An admitted event, as work for identity (which needs only its tokens)."""
    return batch.Item("event", event.event_id, source=source, tokens=event.subject.tokens, raw=raw)


def to_identity(ctx: Context, items: list[batch.Item]) -> list[Output]:
    """Work for identity, as few batch records as fit (one partition: in order)."""
    return [
        Output(ctx.internal.identity, 0, None, batch.encode(chunk)) for chunk in batch.chunks(items)
    ]


def to_views(ctx: Context, items: list[batch.Item]) -> list[Output]:
    """Work for the views, one batch record per view partition, in order per person."""
    by_partition: dict[int, list[batch.Item]] = defaultdict(list)
    for item in items:
        by_partition[batch.partition_for(item.key.encode(), ctx.partitions)].append(item)
    return [
        Output(ctx.internal.view, partition, None, batch.encode(chunk))
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
