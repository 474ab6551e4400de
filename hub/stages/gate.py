"""The gate: every partner record is decoded, checked, and sent to exactly one place.

``admit`` is the decision as a pure function of the bytes, the topic and the lawful-basis
check, so the rules are unit-tested without Kafka. The Faust agent in ``hub.app``
only carries out the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hub.agreements import AgreementBook
from hub.errors import InputError
from hub.models import BasisKind, ConsentRecord, PartnerEvent
from hub.serde import Serde

__all__ = ["Decision", "Outcome", "admit", "lawful_basis_problem"]


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


def lawful_basis_problem(
    event: PartnerEvent, consent: ConsentRecord | None, agreements: AgreementBook, at: datetime
) -> str | None:
    """None when ``event`` has a live lawful basis at ``at``; else why not."""
    basis = event.basis
    if basis.kind is BasisKind.AGREEMENT:
        assert basis.agreement_id is not None
        agreement = agreements.get(basis.agreement_id)
        if agreement is None:
            return f"data-sharing agreement {basis.agreement_id} is not in this deployment"
        return agreement.problem_with(event, at)
    if consent is None:
        return f"consent {basis.consent_id} is not known to the hub (yet)"
    return consent.covers(event, at)


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
