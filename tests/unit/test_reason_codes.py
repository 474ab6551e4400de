"""Reason codes (``hub.stages.reasons``): every reason the hub writes, made by the code
that writes it, gets its own code, never ``other``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.pseudonymise import token
from hub.agreements import Agreement, AgreementBook
from hub.errors import DecodeError, EventRejected, SchemaNotFound
from hub.models import BasisKind, ConsentStatus, LawfulBasis, PartnerEvent
from hub.stages.basis import Consents, lawful_basis_problem, link_basis_problem
from hub.stages.effects import Effects, Refused, State, attempt
from hub.stages.reasons import (
    BASIS_RESULTS,
    DEAD_LETTER_REASONS,
    OTHER,
    basis_check,
    basis_result,
    dead_letter_reason,
)
from tests.unit import factories

OTHER_NHS = token("nhs", "4010232137", factories.KEY)
NOW = factories.WHEN + timedelta(hours=1)
AGREEMENT = Agreement(
    id="early-help-2025",
    title="Early help",
    partners=["city-police"],
    event_types=["police.*"],
    purposes=["early-help"],
    roles=["practitioner"],  # type: ignore[list-item]
    retention_days=365,
    valid_from=(NOW - timedelta(days=10)).date(),
)
BOOK = AgreementBook([AGREEMENT])


def under_agreement(agreement_id: str, partner: str = "city-police") -> PartnerEvent:
    event = factories.event(partner_id=partner)
    basis = LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose="early-help")
    return event.model_copy(update={"basis": basis})


def consent_problem(event: PartnerEvent, **consent: object) -> str:
    stored = factories.consent(**consent).model_dump(mode="json")  # type: ignore[arg-type]
    problem = Consents().problem(event, {"c-1": stored}, BOOK, NOW)
    assert problem is not None
    return problem


def consent_reasons() -> dict[str, str]:
    """Each consent result's reason, as the gate's check writes it."""
    event = factories.event()
    withdrawn = Consents().problem(event, {"c-1": {"withdrawn": True}}, BOOK, NOW)
    return {
        "unknown": lawful_basis_problem(event, None, BOOK, NOW) or "",
        "withdrawn": withdrawn or "",
        "not_live": consent_problem(event, expires_at=NOW - timedelta(days=1)),
        "purpose": consent_problem(event, purposes=["safeguarding"]),
        "partner": consent_problem(event, partners=["city-health"]),
        "different_person": consent_problem(event, tokens=[factories.COUNCIL_TOKEN]),
        "identifier_not_given": consent_problem(
            factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
        ),
    }


def agreement_reasons() -> dict[str, str]:
    """Each agreement result's reason, as the gate's check writes it."""
    late = AGREEMENT.model_copy(update={"valid_to": (NOW - timedelta(days=1)).date()})
    police = under_agreement(AGREEMENT.id)
    housing = under_agreement(AGREEMENT.id, "council-housing")
    purpose = police.model_copy(
        update={"basis": police.basis.model_copy(update={"purpose": "research"})}
    )

    def problem(event: PartnerEvent, book: AgreementBook = BOOK) -> str:
        return lawful_basis_problem(event, None, book, NOW) or ""

    return {
        "unknown": problem(under_agreement("not-signed")),
        "not_in_force": problem(police, AgreementBook([late])),
        "partner": problem(housing),
        "purpose": problem(purpose),
        "event_type": problem(police),  # a housing event under a police agreement
    }


def test_every_lawful_basis_reason_has_its_own_code() -> None:
    for kind, reasons in (("consent", consent_reasons()), ("agreement", agreement_reasons())):
        assert all(reasons.values()), reasons  # each is a problem
        assert {code: basis_result(kind, text) for code, text in reasons.items()} == {
            code: code for code in reasons
        }
        assert set(BASIS_RESULTS[kind]) == {"live", *reasons, OTHER}


def test_the_gates_check_names_the_basis_kind_and_live_without_a_reason() -> None:
    assert basis_check(factories.event(), "") == ("consent", "live")
    agreement = under_agreement(AGREEMENT.id)
    assert basis_check(agreement, agreement_reasons()["partner"]) == ("agreement", "partner")
    assert basis_check(factories.event(), "a reason in words the hub never wrote") == (
        "consent",
        OTHER,
    )


def stage_error(exc: Exception) -> str:
    def fail() -> None:
        raise exc

    reason = attempt("view", State({}), Effects(), fail)
    assert reason is not None
    return reason


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (f"DecodeError: {DecodeError('record has no value (null)')}", "undecodable"),
        (f"SchemaNotFound: {SchemaNotFound('schema id 7 is not known')}", "schema_unknown"),
        (f"EventRejected: {EventRejected([('/subject', 'required')])}", "invalid_event"),
        (
            "event says partner city-health but arrived on the topic of council-housing",
            "wrong_partner",
        ),
        ("link says partner a but arrived on the topic of b", "wrong_partner"),
        (stage_error(KeyError("x")), "stage_error"),
        (stage_error(Refused("the view has no operation 'x'")), "unknown_operation"),
        (
            stage_error(Refused("identity of person p-1 would take 9 bytes (8 at most): too many")),
            "person_too_large",
        ),
        (
            "quarantine for basis c-1 is full (3 records held, 786432 bytes at most): send its "
            "consent or agreement",
            "quarantine_full",
        ),
        (
            "consent record is on partition 1 but its key belongs on partition 2",
            "consent_misplaced",
        ),
        ("consent_id: belongs to the partner that first published it", "consent_owned"),
        ("consent_id: a withdrawn consent cannot be given again; record a new", "consent_reused"),
        ("something the hub never wrote", OTHER),
    ],
)
def test_dead_letter_reasons_have_codes(reason: str, code: str) -> None:
    assert dead_letter_reason(reason) == code
    assert code in DEAD_LETTER_REASONS


def test_a_links_basis_problem_is_a_dead_letter_for_its_link_basis() -> None:
    """Links are the only records dead-lettered for their basis, whichever check failed."""
    no_basis = factories.link().model_copy(update={"basis": None})  # as read, unvalidated
    consent = factories.consent(tokens=[factories.COUNCIL_TOKEN])
    other_tokens = factories.link(tokens=[factories.NHS_TOKEN, OTHER_NHS])
    reasons = [
        link_basis_problem(no_basis, None, BOOK, NOW),
        link_basis_problem(
            factories.link(), consent.model_copy(update={"purposes": ["x"]}), BOOK, NOW
        ),
        link_basis_problem(other_tokens, consent, BOOK, NOW),
        link_basis_problem(factories.link(agreement_id="not-signed"), None, BOOK, NOW),
        *consent_reasons().values(),
    ]
    assert all(reasons), reasons
    assert {dead_letter_reason(r or "") for r in reasons} == {"link_basis"}


def test_a_withdrawn_consent_status_is_not_live() -> None:
    event = factories.event()
    assert basis_result("consent", consent_problem(event, status=ConsentStatus.WITHDRAWN)) == (
        "not_live"
    )
