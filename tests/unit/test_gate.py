from datetime import date, timedelta

from hub.agreements import Agreement, AgreementBook
from hub.models import BasisKind, ConsentRecord, LawfulBasis, PartnerEvent
from hub.serde import Serde
from hub.stages.basis import lawful_basis_problem
from hub.stages.gate import Decision, Outcome, admit
from hub.users import Role
from tests.unit import factories
from tests.unit.fakes import MemoryRegistry

SERDE = Serde(MemoryRegistry())
DAY = factories.WHEN.date()  # the day the gate decides on


def agreement(agreement_id: str, event_types: list[str], valid_to: date | None = None) -> Agreement:
    return Agreement(
        id=agreement_id,
        title="test",
        partners=["council-housing"],
        event_types=event_types,
        purposes=["early-help"],
        roles=[Role.PRACTITIONER],
        retention_days=30,
        valid_from=DAY - timedelta(days=60),
        valid_to=valid_to,
    )


BOOK = AgreementBook(
    [
        agreement("dsa-1", ["housing.*"]),
        agreement("dsa-health", ["health.*"]),
        agreement("dsa-old", ["housing.*"], valid_to=DAY - timedelta(days=1)),
    ]
)


def decide(
    event: PartnerEvent, consents: dict[str, ConsentRecord], topic_partner: str = "council-housing"
) -> Decision:
    data = SERDE.encode(event, "t-value")

    def basis_problem(e: PartnerEvent) -> str | None:
        consent = consents.get(e.basis.consent_id or "")
        return lawful_basis_problem(e, consent, BOOK, factories.WHEN)

    return admit(data, topic_partner, SERDE, basis_problem)


def test_consented_event_is_admitted() -> None:
    decision = decide(factories.event(), {"c-1": factories.consent()})
    assert decision.outcome is Outcome.ADMIT
    assert decision.event is not None


def test_unknown_consent_is_quarantined_with_reason() -> None:
    decision = decide(factories.event(consent_id="c-9"), {})
    assert decision.outcome is Outcome.QUARANTINE
    assert decision.reason == "consent c-9 is not known to the hub (yet)"


def under_agreement(agreement_id: str, purpose: str = "early-help") -> PartnerEvent:
    basis = LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose=purpose)
    return factories.event().model_copy(update={"basis": basis})


def test_event_under_an_agreement_in_force_is_admitted() -> None:
    assert decide(under_agreement("dsa-1"), {}).outcome is Outcome.ADMIT


def test_agreement_problems_are_quarantined_with_reasons() -> None:
    unknown = decide(under_agreement("dsa-9"), {})
    assert unknown.outcome is Outcome.QUARANTINE
    assert unknown.reason == "data-sharing agreement dsa-9 is not in this deployment"
    purpose = decide(under_agreement("dsa-1", purpose="marketing"), {})
    assert purpose.reason == "agreement dsa-1 does not cover purpose marketing"
    other_partner = decide(under_agreement("dsa-1"), {}, topic_partner="council-housing")
    assert other_partner.outcome is Outcome.ADMIT
    health_only = decide(under_agreement("dsa-health"), {})
    assert health_only.reason == "agreement dsa-health does not cover event type housing.arrears"
    expired = decide(under_agreement("dsa-old"), {})
    assert expired.reason == f"agreement dsa-old is not in force on {DAY.isoformat()}"


def test_event_on_another_partners_topic_is_dead_lettered() -> None:
    decision = decide(factories.event(), {"c-1": factories.consent()}, topic_partner="city-health")
    assert decision.outcome is Outcome.DEAD_LETTER
    assert "arrived on the topic of city-health" in decision.reason


def test_undecodable_bytes_are_dead_lettered_with_the_error_class() -> None:
    decision = admit(b"\x00\x00\x00\x00\x07", "council-housing", SERDE, lambda e: None)
    assert decision.outcome is Outcome.DEAD_LETTER
    assert decision.reason.startswith("SchemaNotFound: schema id 7")
