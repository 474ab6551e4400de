"""The typed edge and the contracts cannot drift: models and schemas round-trip both ways."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

import hub.models as models
from hub.codec import decode_body, encode, split_frame
from hub.contracts import load_contracts
from hub.examples import example, variant_count
from hub.models import (
    MODELS_BY_SCHEMA,
    PAYLOAD_MODELS,
    Alert,
    AlertFeedback,
    AlertSeverity,
    AvroRecord,
    Benefit,
    CareService,
    CommunityEvent,
    CommunityKind,
    DashRisk,
    FeedbackOutcome,
    LinkMethod,
    LinkStatus,
    PatternCell,
    PoliceEvent,
    PoliceKind,
    ReferralEvent,
    ReferralKind,
    ReferralReason,
    SocialCareEvent,
    SocialCareKind,
    WelfareEvent,
    WelfareKind,
)
from hub.schema_files import load_schema
from tests.unit import factories

WHEN = factories.WHEN


def round_trip(instance: AvroRecord) -> AvroRecord:
    schema = fastavro.parse_schema(load_schema(instance.avro_schema))
    data = encode(schema, 1, instance.to_avro())
    return type(instance).from_avro(decode_body(split_frame(data)[1], schema))


def cell(count: int | None, suppressed: bool) -> PatternCell:
    return PatternCell(
        window_start=WHEN - timedelta(days=7),
        window_end=WHEN,
        area_code="E05000001",
        combination_code="education+housing",
        count=count,
        suppressed=suppressed,
    )


def model_instances() -> list[AvroRecord]:
    """A valid instance of every model, and of every payload kind, set and unset fields."""
    payloads: list[Any] = [
        model(kind=kind, **extra)
        for model, extra in [
            (models.HousingEvent, {}),
            (models.EducationEvent, {}),
            (models.HealthEvent, {}),
            (PoliceEvent, {"dash_risk": DashRisk.HIGH, "children_present": True}),
            (SocialCareEvent, {"service": CareService.EARLY_HELP}),
            (WelfareEvent, {"benefit": Benefit.UNIVERSAL_CREDIT}),
            (CommunityEvent, {}),
            (
                ReferralEvent,
                {
                    "from_partner": "northfield-school",
                    "to_partner": "early-help-hub",
                    "reason_code": ReferralReason.FINANCIAL,
                },
            ),
        ]
        for kind in model.model_fields["kind"].annotation  # type: ignore[union-attr]
    ]
    return [
        *(factories.event(payload=payload) for payload in payloads),
        factories.consent(),
        factories.consent(expires_at=WHEN + timedelta(days=30)),
        factories.link(method=LinkMethod.SAME_RECORD),
        factories.link(agreement_id="dsa-1"),
        factories.link(status=LinkStatus.RETRACTED, consent_id=None),
        Alert(
            alert_id="a-1",
            person_id="p-n62bzm7ly6hypqloy3bt",
            rule_code="housing-and-school-decline",
            severity=AlertSeverity.HIGH,
            explanation=["housing.arrears:BAND_1000_3000", "education.exclusion"],
            event_ids=[factories.event().event_id],
            partners=["council-housing"],
            created_at=WHEN,
        ),
        AlertFeedback(
            feedback_id="f-1",
            alert_id="a-1",
            partner_id="council-housing",
            practitioner_role="housing-officer",
            outcome=FeedbackOutcome.ACTED,
            at=WHEN,
        ),
        cell(count=25, suppressed=False),
        cell(count=None, suppressed=True),
    ]


@pytest.mark.parametrize("instance", model_instances(), ids=lambda m: type(m).__name__)
def test_every_model_round_trips_through_its_schema(instance: AvroRecord) -> None:
    assert round_trip(instance) == instance


@pytest.mark.parametrize("name", sorted(MODELS_BY_SCHEMA))
def test_every_generated_example_of_every_schema_is_a_valid_model(name: str) -> None:
    schema = load_schema(name)
    parsed = fastavro.parse_schema(schema)
    for variant in range(variant_count(schema)):
        data = encode(parsed, 1, example(schema, variant))
        model = MODELS_BY_SCHEMA[name].from_avro(decode_body(split_frame(data)[1], parsed))
        assert encode(parsed, 1, model.to_avro()) == data, f"{name} variant {variant}"


def test_every_contract_has_a_model_and_every_payload_branch_a_payload_model() -> None:
    assert {contract.name for contract in load_contracts()} == set(MODELS_BY_SCHEMA)
    payload = next(f for f in load_schema("PartnerEvent")["fields"] if f["name"] == "payload")
    assert [f"org.placehub.{b['name']}" for b in payload["type"]] == [
        model.avro_name for model in PAYLOAD_MODELS
    ]


def named_enums(node: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if isinstance(node, list):
        for branch in node:
            found |= named_enums(branch)
    elif isinstance(node, dict):
        if node.get("type") == "enum":
            found[node["name"]] = node["symbols"]
        for child in [*node.get("fields", []), node.get("type"), node.get("items")]:
            found |= named_enums(child)
    return found


def test_every_schema_enum_is_a_model_enum_with_the_same_symbols() -> None:
    enums = {}
    for name in MODELS_BY_SCHEMA:
        enums |= named_enums(load_schema(name))
    assert len(enums) == 31
    for enum_name, symbols in enums.items():
        model_enum = getattr(models, enum_name)
        assert issubclass(model_enum, StrEnum)
        assert [member.value for member in model_enum] == symbols, enum_name


def test_models_refuse_what_the_schema_allows_but_the_contract_forbids() -> None:
    with pytest.raises(ValidationError, match="multiple of 5"):
        cell(count=3, suppressed=False)
    with pytest.raises(ValidationError, match="from_partner"):
        ReferralEvent(
            kind=ReferralKind.MADE,
            from_partner="Northfield School",
            to_partner="early-help-hub",
            reason_code=ReferralReason.HOUSING,
        )
    assert PoliceEvent(kind=PoliceKind.WELFARE_CONCERN).event_type == "police.welfare_concern"
    assert SocialCareEvent(
        kind=SocialCareKind.PLAN_OPENED, service=CareService.EARLY_HELP
    ).event_type == ("social_care.plan_opened")
    assert WelfareEvent(kind=WelfareKind.SANCTION, benefit=Benefit.JSA).family == "welfare"
    assert CommunityEvent(kind=CommunityKind.FOOD_BANK).event_type == "community.food_bank"
