from datetime import timedelta

import pytest
from pydantic import ValidationError

from hub.models import (
    BasisKind,
    ConsentStatus,
    HealthEvent,
    HealthKind,
    LawfulBasis,
    PartnerEvent,
)
from tests.unit import factories


def test_event_type_must_match_the_payload() -> None:
    data = factories.event().model_dump()
    data["event_type"] = "health.ae_attendance"
    with pytest.raises(ValidationError, match="does not match the payload"):
        PartnerEvent.model_validate(data)


def test_a_basis_must_name_its_consent_or_agreement() -> None:
    with pytest.raises(ValidationError, match="needs a consent_id"):
        LawfulBasis(kind=BasisKind.CONSENT, purpose="early-help")
    with pytest.raises(ValidationError, match="needs an agreement_id"):
        LawfulBasis(kind=BasisKind.AGREEMENT, purpose="early-help")


def test_naive_timestamps_and_raw_identifiers_are_refused() -> None:
    data = factories.event().model_dump()
    naive = factories.WHEN.replace(tzinfo=None).isoformat()  # no offset, no Z
    with pytest.raises(ValidationError):
        PartnerEvent.model_validate({**data, "occurred_at": naive})
    with pytest.raises(ValidationError):
        PartnerEvent.model_validate({**data, "subject": {"tokens": ["9434765919"]}})


def test_consent_covers_only_its_purpose_partners_person_and_time() -> None:
    event = factories.event()
    at = factories.WHEN
    assert factories.consent().covers(event, at) is None
    assert "purpose" in (factories.consent(purposes=["other"]).covers(event, at) or "")
    assert "partner" in (factories.consent(partners=["city-health"]).covers(event, at) or "")
    assert "different person" in (
        factories.consent(tokens=[factories.COUNCIL_TOKEN]).covers(event, at) or ""
    )
    withdrawn = factories.consent(status=ConsentStatus.WITHDRAWN)
    assert "withdrawn" in (withdrawn.covers(event, at) or "")
    expired = factories.consent(expires_at=at - timedelta(days=1))
    assert "expired" in (expired.covers(event, at) or "")


def test_payload_event_type_is_family_dot_kind() -> None:
    assert HealthEvent(kind=HealthKind.MENTAL_HEALTH_REFERRAL).event_type == (
        "health.mental_health_referral"
    )
