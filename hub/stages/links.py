"""Links: partners' assertions that two identifiers are one person (or retractions of one).

Each partner writes its links to its own topic, ``partner.<id>.links``, and a link must
name that partner: only it can then assert or retract evidence in its name. An asserted
link needs a lawful basis, like an event, because joining two identifiers processes a
person's data:

- under an **agreement** (static deployment config, the same on every worker) the stage
  checks it here and hands the link to identity, or dead-letters it with the reason;
- under a **consent** it goes to the release stage on the consent's partition (the
  internal control topic, keyed by consent id): that stage owns the consent, so a link
  published just after its consent is held until the consent arrives instead of being
  refused, and one under a withdrawn consent is dropped.

A retraction needs no basis (undoing evidence is always allowed); one that names a
consent goes through the release stage too, so it stays in order with its assertion.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hub import batch
from hub.batch import Op
from hub.errors import InputError
from hub.models import BasisKind, IdentityLink, LinkStatus
from hub.stages.basis import link_basis_problem
from hub.stages.context import Context
from hub.stages.effects import Effects, Output, Record, State, run_each
from hub.stages.hops import OP, SOURCE, to_identity

__all__ = ["LINK_OP", "LinksStage", "link_item"]

LINK_OP = b"link"  # the OP header of a link sent to the release stage


def link_item(link: IdentityLink, raw: bytes | None) -> batch.Item:
    """A link, as work for identity (an asserted one carries its consent id, so identity
    drops it if that consent was withdrawn before it arrived)."""
    consent = link.basis.consent_id if link.basis else None
    asserted = link.status is LinkStatus.ASSERTED
    return batch.Item(Op.LINK, link.link_id, raw=raw, basis=(consent or "") if asserted else "")


class LinksStage:
    """Checks link records (owner, basis) and passes them on."""

    name = "links"
    tables: tuple[str, ...] = ()
    writes: tuple[tuple[str, ...], ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Links to identity (in order) or the release stage; the rest to the DLQ."""
        effects = Effects()
        links: list[batch.Item] = []

        def one(record: Record) -> None:
            reason = ""
            try:
                link = self.ctx.serde.decode(record.value, IdentityLink)
            except InputError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                owner = self.ctx.topics.links_partner_of(record.topic)
                if link.partner_id != owner:
                    reason = (
                        f"link says partner {link.partner_id} but arrived on the topic of {owner}"
                    )
                elif link.basis is not None and link.basis.kind is BasisKind.CONSENT:
                    effects.outputs.append(self._to_release(record, link.basis.consent_id or ""))
                elif link.status is LinkStatus.ASSERTED:
                    reason = link_basis_problem(link, None, self.ctx.agreements, now) or ""
            if reason:
                effects.dead_letter(record, self.name, reason, now)
            elif link.basis is None or link.basis.kind is BasisKind.AGREEMENT:
                links.append(link_item(link, record.value))

        run_each(self.name, records, state, effects, now, one)
        effects.outputs += to_identity(self.ctx, links)
        return effects

    def _to_release(self, record: Record, consent_id: str) -> Output:
        """To the release stage, on the partition of the consent it names."""
        key = consent_id.encode()
        headers = ((OP, LINK_OP), (SOURCE, record.source.encode()))
        partition = batch.partition_for(key, self.ctx.partitions)
        return Output(self.ctx.internal.control, partition, key, record.value, headers)
