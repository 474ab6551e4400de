"""The gate: every partner record is decoded, checked, and sent to exactly one place.

``admit`` is the decision for one record, a pure function of the bytes, the topic and the
lawful-basis check; ``GateStage.process`` applies it to a batch: admitted events go to
identity, those without a basis yet to quarantine, unreadable ones to the DLQ, and every
record is counted once in its partner's ledger (``received``, ``dead_lettered``), even if
it is read again after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub import batch
from hub.errors import InputError
from hub.models import PartnerEvent
from hub.serde import Serde
from hub.stages import accounting
from hub.stages.basis import Consents
from hub.stages.context import Context
from hub.stages.effects import OUTPUTS, Effects, Output, Pending, Record, State, run_each
from hub.stages.hops import REASON, SOURCE, event_item, to_identity
from hub.stages.quarantine import held_key
from hub.stages.reasons import basis_check

__all__ = ["Decision", "GateStage", "Outcome", "admit"]


class Outcome(StrEnum):
    """Where a record goes: exactly one of these."""

    ADMIT = "admit"
    QUARANTINE = "quarantine"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one record, with the reason for anything but ADMIT."""

    outcome: Outcome
    event: PartnerEvent | None = None
    reason: str = ""


def admit(
    data: bytes | None,
    topic_partner: str,
    serde: Serde,
    basis_problem: Callable[[PartnerEvent], str | None],
) -> Decision:
    """Decide where a record read from ``topic_partner``'s topic goes."""
    try:
        event = serde.decode(data, PartnerEvent)
    except InputError as exc:
        return Decision(Outcome.DEAD_LETTER, reason=f"{type(exc).__name__}: {exc}")
    if event.partner_id != topic_partner:
        return Decision(
            Outcome.DEAD_LETTER,
            event,
            f"event says partner {event.partner_id} but arrived on the topic of {topic_partner}",
        )
    problem = basis_problem(event)
    if problem is not None:
        return Decision(Outcome.QUARANTINE, event, problem)
    return Decision(Outcome.ADMIT, event)


class GateStage:
    """Decides a batch of partner records: each goes to identity, quarantine or the DLQ."""

    name = "gate"
    tables: tuple[str, ...] = ("consents", "linked", "ledger")  # consents, linked: read only
    # One phase: a replay re-sends a batch's records whatever the ledger says, and the
    # ledger counts each offset once whichever landed first.
    writes: tuple[tuple[str, ...], ...] = ((OUTPUTS, "ledger"),)

    def __init__(self, ctx: Context, consents: Consents) -> None:
        self.ctx = ctx
        self.consents = consents

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Decide ``records``; admitted ones go to identity in as few records as fit."""
        effects = Effects()
        admitted = Pending()  # undone with a record that fails after admitting
        state.extras.append(admitted)
        ledger, consents, linked = state["ledger"], state["consents"], state["linked"]
        agreements = self.ctx.agreements

        def problem(event: PartnerEvent) -> str | None:
            return self.consents.problem(event, consents, agreements, now, linked)

        def count(record: Record, partner: str, outcome: Outcome) -> None:
            """Once in the ledger (even if read again), and in the metrics."""
            dead = outcome is Outcome.DEAD_LETTER
            key = accounting.ledger_key(record.topic, record.partition)
            entry = ledger.get(key)
            if not accounting.already_counted(entry, record.offset):
                flows = ["received"] + dead * ["dead_lettered"]
                ledger[key] = accounting.count(entry, record.offset, partner, flows)
            effects.count("placehub_gate_outcomes", partner, outcome.value)
            if dead:
                accounting.count_settled(effects, partner, "dead_lettered")

        def decide(record: Record) -> None:
            partner = self.ctx.topics.partner_of(record.topic) or "unknown"
            decision = admit(record.value, partner, self.ctx.serde, problem)
            if decision.outcome is Outcome.ADMIT:
                assert decision.event is not None
                admitted.append(event_item(decision.event, record.value, record.source))
            elif decision.outcome is Outcome.QUARANTINE:
                assert decision.event is not None
                effects.outputs.append(self._to_quarantine(record, decision))
            else:
                effects.dead_letter(record, self.name, decision.reason, now)
            count(record, partner, decision.outcome)
            if decision.event is not None and decision.outcome is not Outcome.DEAD_LETTER:
                checked = basis_check(decision.event, decision.reason)
                effects.count("placehub_lawful_basis_checks", partner, *checked)

        def failed(record: Record, reason: str) -> None:
            count(
                record, self.ctx.topics.partner_of(record.topic) or "unknown", Outcome.DEAD_LETTER
            )

        run_each(self.name, records, state, effects, now, decide, failed)
        effects.outputs[:0] = to_identity(self.ctx, admitted)
        return effects

    def _to_quarantine(self, record: Record, decision: Decision) -> Output:
        """Held under the id of the basis that would release it, on that id's partition."""
        assert decision.event is not None
        key = held_key(decision.event).encode()
        headers = ((REASON, decision.reason.encode()), (SOURCE, record.source.encode()))
        partition = batch.partition_for(key, self.ctx.partitions)
        return Output(self.ctx.topics.quarantine, partition, key, record.value, headers)
