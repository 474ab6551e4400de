"""Valid model instances for unit tests, built the way a partner's connector would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from connectors.pseudonymise import token
from hub.models import (
    BasisKind,
    ConsentRecord,
    ConsentStatus,
    HousingEvent,
    HousingKind,
    IdentityLink,
    LawfulBasis,
    LinkMethod,
    LinkStatus,
    PartnerEvent,
    Payload,
    Subject,
)

KEY = b"unit-test-key"
NHS_TOKEN = token("nhs", "9434765919", KEY)
COUNCIL_TOKEN = token("council", "HSG-0042", KEY)
# A recent moment (to the second, as Avro's millis keep it): nothing built here expires.
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def event(
    partner_id: str = "council-housing",
    tokens: list[str] | None = None,
    consent_id: str = "c-1",
    payload: Payload | None = None,
    occurred_at: datetime = WHEN,
    event_id: str | None = None,
) -> PartnerEvent:
    body = payload or HousingEvent(kind=HousingKind.ARREARS)
    return PartnerEvent(
        event_id=event_id or str(uuid.uuid4()),
        partner_id=partner_id,
        source_system="northgate",
        source_ref="HSG-0042",
        event_type=body.event_type,
        occurred_at=occurred_at,
        recorded_at=WHEN,
        subject=Subject(tokens=tokens or [NHS_TOKEN], area_code="E05000001"),
        basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help"),
        payload=body,
    )


def consent(
    consent_id: str = "c-1",
    status: ConsentStatus = ConsentStatus.GIVEN,
    purposes: list[str] | None = None,
    partners: list[str] | None = None,
    tokens: list[str] | None = None,
    expires_at: datetime | None = None,
    partner_id: str = "council-housing",
) -> ConsentRecord:
    return ConsentRecord(
        consent_id=consent_id,
        partner_id=partner_id,
        subject_tokens=tokens or [NHS_TOKEN],
        purposes=purposes or ["early-help"],
        sharing_partners=partners or ["council-housing", "city-health"],
        status=status,
        recorded_at=WHEN,
        expires_at=expires_at,
    )


def link(
    partner_id: str = "council-housing",
    tokens: list[str] | None = None,
    status: LinkStatus = LinkStatus.ASSERTED,
    consent_id: str | None = "c-1",
    agreement_id: str | None = None,
    link_id: str = "l-1",
    method: LinkMethod = LinkMethod.VERIFIED_MATCH,
) -> IdentityLink:
    """A link under consent ``consent_id`` (or agreement ``agreement_id``; neither: none)."""
    basis = None
    if agreement_id:
        basis = LawfulBasis(
            kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose="early-help"
        )
    elif consent_id:
        basis = LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help")
    return IdentityLink(
        link_id=link_id,
        partner_id=partner_id,
        tokens=tokens or [NHS_TOKEN, COUNCIL_TOKEN],
        method=method,
        status=status,
        recorded_at=WHEN,
        basis=basis,
    )
