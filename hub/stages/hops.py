"""The internal hops between stages: header names and batch records for identity and views.

Internal topics are not contracts: their records are ``hub.batch`` envelopes, and the
headers below carry only ASCII operation names, reasons and record positions.
"""

from __future__ import annotations

from collections import defaultdict

from hub import batch
from hub.models import PartnerEvent
from hub.stages.context import Context
from hub.stages.effects import Output

__all__ = ["OP", "REASON", "SOURCE", "event_item", "to_identity", "to_views"]

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
