from hub.gate import Outcome, admit
from hub.models import BasisKind, ConsentRecord, LawfulBasis, PartnerEvent
from hub.serde import Serde
from tests.unit import factories
from tests.unit.fakes import MemoryRegistry

SERDE = Serde(MemoryRegistry())


def decide(
    event: PartnerEvent, consents: dict[str, ConsentRecord], topic_partner: str = "council-housing"
):  # type: ignore[no-untyped-def]
    data = SERDE.encode(event, "t-value")
    return admit(data, topic_partner, SERDE, consents.get, factories.WHEN)


def test_consented_event_is_admitted() -> None:
    decision = decide(factories.event(), {"c-1": factories.consent()})
    assert decision.outcome is Outcome.ADMIT
    assert decision.event is not None


def test_unknown_consent_is_quarantined_with_reason() -> None:
    decision = decide(factories.event(consent_id="c-9"), {})
    assert decision.outcome is Outcome.QUARANTINE
    assert decision.reason == "consent c-9 is not known to the hub (yet)"


def test_agreement_basis_waits_in_quarantine_until_agreements_exist() -> None:
    event = factories.event().model_copy(
        update={"basis": LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id="dsa-1", purpose="p")}
    )
    decision = decide(event, {})
    assert decision.outcome is Outcome.QUARANTINE
    assert "dsa-1" in decision.reason


def test_event_on_another_partners_topic_is_dead_lettered() -> None:
    decision = decide(factories.event(), {"c-1": factories.consent()}, topic_partner="city-health")
    assert decision.outcome is Outcome.DEAD_LETTER
    assert "arrived on the topic of city-health" in decision.reason


def test_undecodable_bytes_are_dead_lettered_with_the_error_class() -> None:
    decision = admit(b"\x00\x00\x00\x00\x07", "council-housing", SERDE, {}.get, factories.WHEN)
    assert decision.outcome is Outcome.DEAD_LETTER
    assert decision.reason.startswith("SchemaNotFound: schema id 7")
