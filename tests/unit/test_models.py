from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.pseudonymise import token
from hub.models import (
    MAX_TOKENS_PER_EVENT,
    BasisKind,
    ConsentStatus,
    HealthEvent,
    HealthKind,
    LawfulBasis,
    PartnerEvent,
)
from hub.serde import validation_errors
from tests.unit import factories


def _refusals(**changes: Any) -> list[tuple[str, str]]:
    """The (pointer, message) pairs an event with ``changes`` is refused with."""
    try:
        PartnerEvent.model_validate({**factories.event().model_dump(), **changes})
    except ValidationError as exc:
        return validation_errors(exc)
    return []


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


def test_consent_shares_only_for_its_purposes_partners_and_time() -> None:
    at, housing = factories.WHEN, "council-housing"
    assert factories.consent().shares(housing, "early-help", at) is None
    assert "purpose" in (factories.consent().shares(housing, "other", at) or "")
    assert "partner" in (
        factories.consent(partners=["city-health"]).shares(housing, "early-help", at) or ""
    )
    withdrawn = factories.consent(status=ConsentStatus.WITHDRAWN)
    assert "withdrawn" in (withdrawn.shares(housing, "early-help", at) or "")
    expired = factories.consent(expires_at=at - timedelta(days=1))
    assert "expired" in (expired.shares(housing, "early-help", at) or "")


def test_payload_event_type_is_family_dot_kind() -> None:
    assert HealthEvent(kind=HealthKind.MENTAL_HEALTH_REFERRAL).event_type == (
        "health.mental_health_referral"
    )


def test_errors_name_the_field_and_rule_never_the_value() -> None:
    value = "JANE SMITH 1980-02-01 AB1 2CD"
    refused = _refusals(event_type=value) + _refusals(event_type="health.ae_attendance")
    refused += _refusals(event_type="x" * 900_000)
    assert [pointer for pointer, _ in refused] == ["/event_type", "/", "/event_type"]
    assert "expected 'housing.arrears'" in refused[1][1]
    assert all(value not in message and "xxxx" not in message for _, message in refused)


@pytest.mark.parametrize(
    "ref",
    [
        "9434765919",  # an NHS number
        "943-476-5919",
        "943.476.5919",
        "1234567890",  # ten digits alone look like one, valid or not
        "HSG-9434765919",  # an NHS number (valid check digit) inside a reference
        "A000000000000",  # a UPN's shape
        "QQ123456C",  # a National Insurance number's shape
    ],
)
def test_source_ref_must_not_look_like_a_national_identifier(ref: str) -> None:
    [(pointer, message)] = _refusals(source_ref=ref)
    assert pointer == "/source_ref" and "national identifier" in message and ref not in message


def test_ordinary_references_pass() -> None:
    for ref in ["HSG-0042", "RX1-778", "P1234567890", "case-2026-03-02", "COU-000001"]:
        assert _refusals(source_ref=ref) == [], ref


def test_partner_made_ids_must_not_be_national_identifiers() -> None:
    with pytest.raises(ValidationError, match="national identifier"):
        LawfulBasis(kind=BasisKind.CONSENT, consent_id="9434765919", purpose="early-help")
    with pytest.raises(ValidationError, match="national identifier"):
        factories.consent(consent_id="943-476-5919")
    with pytest.raises(ValidationError, match="national identifier"):
        factories.link(link_id="9434765919")


def test_tokens_per_event_are_capped_and_name_one_person() -> None:
    many = [token("council", f"HSG-{n}", factories.KEY) for n in range(MAX_TOKENS_PER_EVENT + 1)]
    [(pointer, message)] = _refusals(subject={"tokens": many})
    assert pointer == "/subject/tokens" and f"at most {MAX_TOKENS_PER_EVENT} items" in message
    assert _refusals(subject={"tokens": many[:MAX_TOKENS_PER_EVENT]}) == []
    two_people = [factories.NHS_TOKEN, token("nhs", "4010232137", factories.KEY)]
    [(_, message)] = _refusals(subject={"tokens": two_people})
    assert "at most one token of each of nhs, upn" in message
    [(_, message)] = _refusals(subject={"tokens": [factories.NHS_TOKEN] * 2})
    assert "repeated" in message
    with pytest.raises(ValidationError, match="at most one token"):
        factories.consent(tokens=two_people)


def test_tokens_of_one_scheme_under_two_keys_are_one_person_in_a_rotation() -> None:
    rotated = [factories.NHS_TOKEN, token("nhs", "9434765919", b"the-next-place-key")]
    assert _refusals(subject={"tokens": rotated}) == []


def test_tokens_made_before_key_ids_are_still_read() -> None:
    legacy = "nhs:" + factories.NHS_TOKEN.rsplit(":", 1)[1]
    assert _refusals(subject={"tokens": [legacy]}) == []


def test_future_and_absurd_times_are_refused() -> None:
    now = datetime.now(UTC)
    assert _refusals(occurred_at=now + timedelta(minutes=1)) == []
    for field in ("occurred_at", "recorded_at"):
        for moment in (
            now + timedelta(minutes=10),
            datetime(9999, 12, 31, tzinfo=UTC),
            datetime(1800, 1, 1, tzinfo=UTC),
        ):
            [(pointer, message)] = _refusals(**{field: moment})
            assert pointer == f"/{field}", (field, moment)
            assert "minutes in the future" in message or "before 1900" in message
