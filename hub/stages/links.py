"""Links: partners' assertions that two identifiers are one person (or retractions of one).

The stage only checks that a link can be read and hands it to identity, which applies it
in order with the events; an unreadable link goes to the DLQ with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hub import batch
from hub.batch import Op
from hub.errors import InputError
from hub.models import IdentityLink
from hub.stages.context import Context
from hub.stages.effects import Effects, Record, State, run_each
from hub.stages.hops import to_identity

__all__ = ["LinksStage"]


class LinksStage:
    """Validates link records and passes them to identity."""

    name = "links"
    tables: tuple[str, ...] = ()
    writes: tuple[tuple[str, ...], ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Readable links to identity (in order), the rest to the DLQ."""
        effects = Effects()
        links: list[batch.Item] = []

        def one(record: Record) -> None:
            try:
                link = self.ctx.serde.decode(record.value, IdentityLink)
            except InputError as exc:
                effects.dead_letter(record, self.name, f"{type(exc).__name__}: {exc}", now)
            else:
                links.append(batch.Item(Op.LINK, link.link_id, raw=record.value))

        run_each(self.name, records, state, effects, now, one)
        effects.outputs += to_identity(self.ctx, links)
        return effects
