"""The read policy (hub.access): which entries, which fields, involvement, who reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from hub.access import CONSENT_FIELDS, Bases, Reader, involved, owners, present, refusal, select
from hub.agreements import ENTRY_FIELDS, Agreement, AgreementBook
from hub.models import (
    BasisKind,
    ConsentRecord,
    ConsentStatus,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    LawfulBasis,
)
from hub.stages.view import PersonView, TimelineEntry, entry_for
from hub.users import Role, User
from tests.unit import factories

NOW = datetime.now(UTC)
HOUSING, SCHOOL, HEALTH = "council-housing", "northfield-school", "city-health"
HOUSING_READER = Reader("alex.housing", Role.PRACTITIONER, HOUSING)
SCHOOL_READER = Reader("sam.school", Role.PRACTITIONER, SCHOOL)
HEALTH_READER = Reader("lee.health", Role.PRACTITIONER, HEALTH)


def agreement(
    agreement_id: str = "dsa-1",
    partners: tuple[str, ...] = (HOUSING, HEALTH),
    fields: dict[Role, list[str]] | None = None,
    valid_to: date | None = None,
) -> Agreement:
    return Agreement.model_validate(
        {
            "id": agreement_id,
            "title": "test agreement",
            "partners": list(partners),
            "event_types": ["housing.*", "health.*", "education.*"],
            "purposes": ["early-help"],
            "roles": ["practitioner"],
            "fields": fields,
            "retention_days": 730,
            "valid_from": (NOW - timedelta(days=365)).date(),
            "valid_to": valid_to,
        }
    )


def consented(partner: str = HEALTH, consent_id: str = "c-1", **kwargs) -> TimelineEntry:  # type: ignore[no-untyped-def]
    payload = HealthEvent(kind=HealthKind.AE_ATTENDANCE) if partner == HEALTH else None
    event = factories.event(partner_id=partner, consent_id=consent_id, payload=payload, **kwargs)
    return entry_for(event, f"partner.{partner}.events:0:1")


def agreed(
    partner: str = HEALTH, agreement_id: str = "dsa-1", purpose: str = "early-help"
) -> TimelineEntry:
    payload = (
        HealthEvent(kind=HealthKind.AE_ATTENDANCE)
        if partner == HEALTH
        else EducationEvent(kind=EducationKind.SUSPENSION)
    )
    event = factories.event(partner_id=partner, payload=payload).model_copy(
        update={
            "basis": LawfulBasis(
                kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose=purpose
            )
        }
    )
    return entry_for(event, f"partner.{partner}.events:0:2")


def bases(*agreements: Agreement, consents: dict[str, ConsentRecord] | None = None) -> Bases:
    known = (
        {"c-1": factories.consent()} if consents is None else consents
    )  # shares with housing, health
    return Bases(AgreementBook(list(agreements)), known.get, NOW)


# --- who reads at all -------------------------------------------------------------------


def user(role: Role, partner: str | None) -> User:
    # Built unchecked: the users file refuses a practitioner without a partner, and the
    # read policy refuses one too rather than rely on that.
    return User.model_construct(id="u", role=role, partner=partner, token_sha256="0" * 64)


def test_only_practitioners_of_a_partner_read_people() -> None:
    assert refusal(user(Role.PRACTITIONER, HOUSING)) is None
    assert refusal(user(Role.ADMIN, None)) == "role admin may not read person views"
    assert refusal(user(Role.ADMIN, HOUSING)) == "role admin may not read person views"
    assert refusal(user(Role.STEWARD, None)) == "role steward may not read person views"
    assert refusal(user(Role.PARTNER, HOUSING)) == "role partner may not read person views"
    assert refusal(user(Role.PRACTITIONER, None)) == (
        "a practitioner must belong to a partner to read person views"
    )
    assert Reader.of(user(Role.PRACTITIONER, HOUSING)) == Reader("u", Role.PRACTITIONER, HOUSING)


# --- consent entries --------------------------------------------------------------------


def test_a_consent_entry_is_shown_only_to_its_sharing_partners() -> None:
    entry, rules = consented(), bases()
    assert rules.fields(entry, HOUSING_READER) == CONSENT_FIELDS
    assert rules.fields(entry, SCHOOL_READER) == frozenset()  # not a sharing partner


def test_a_consent_entry_needs_a_live_consent_covering_its_purpose() -> None:
    entry = consented()
    other_purpose = factories.consent(purposes=["school-support"])
    expired = factories.consent(expires_at=NOW - timedelta(days=1))
    withdrawn = factories.consent(status=ConsentStatus.WITHDRAWN)
    for consent in (other_purpose, expired, withdrawn):
        assert bases(consents={"c-1": consent}).fields(entry, HOUSING_READER) == frozenset()
    assert bases(consents={}).fields(entry, HOUSING_READER) == frozenset()  # erased or unknown


# --- agreement entries ------------------------------------------------------------------


def test_an_agreement_entry_is_shown_only_to_its_signatories() -> None:
    entry, rules = agreed(), bases(agreement(partners=(HOUSING, HEALTH)))
    assert rules.fields(entry, HOUSING_READER) == ENTRY_FIELDS
    assert rules.fields(entry, SCHOOL_READER) == frozenset()  # did not sign


def test_an_agreement_entry_shows_the_fields_it_grants_the_role() -> None:
    grants = {Role.PRACTITIONER: ["event_type", "occurred_at"]}
    rules = bases(agreement(fields=grants))
    assert rules.fields(agreed(), HOUSING_READER) == {"event_type", "occurred_at"}


def test_an_agreement_entry_needs_an_agreement_in_force_covering_its_purpose() -> None:
    ended = agreement(valid_to=(NOW - timedelta(days=1)).date())
    assert bases(ended).fields(agreed(), HOUSING_READER) == frozenset()
    assert bases(agreement()).fields(agreed(purpose="marketing"), HOUSING_READER) == frozenset()
    assert bases().fields(agreed(agreement_id="dsa-gone"), HOUSING_READER) == frozenset()


def test_a_partner_sees_its_own_entries_in_full_whatever_their_basis() -> None:
    rules = bases(consents={})
    assert rules.fields(consented(partner=HEALTH), HEALTH_READER) == ENTRY_FIELDS


# --- involvement ------------------------------------------------------------------------


def test_involved_means_an_entry_of_ones_own_or_an_alert() -> None:
    view = PersonView(person_id="p-1", entries=[consented(partner=HEALTH)])
    assert involved(view, HEALTH)
    assert not involved(view, HOUSING)  # sees the entry by consent, but is not involved
    assert involved(view, HOUSING, alerted={HOUSING})


# --- what is shown ----------------------------------------------------------------------


def view_of(*entries: TimelineEntry) -> PersonView:
    return PersonView(person_id="p-1", entries=sorted(entries, key=lambda e: e.occurred_at))


def test_a_reader_sees_only_the_entries_and_fields_their_bases_give() -> None:
    codes_only = agreement(
        "dsa-codes", partners=(SCHOOL, HEALTH), fields={Role.PRACTITIONER: ["event_type"]}
    )
    rules = bases(codes_only)
    health_consented = consented(partner=HEALTH, occurred_at=factories.WHEN - timedelta(days=2))
    health_agreed = agreed(partner=HEALTH, agreement_id="dsa-codes")
    own = agreed(partner=SCHOOL, agreement_id="dsa-codes")
    view = view_of(health_consented, health_agreed, own)

    shown = present("p-1", select(view, lambda e: rules.fields(e, SCHOOL_READER)), SCHOOL_READER)

    # The consent does not share with the school; the agreement gives it codes only.
    assert shown["event_count"] == 2
    items = {item["event_id"]: item for item in shown["timeline"]}
    assert items[health_agreed.event_id] == {
        "event_id": health_agreed.event_id,
        "event_type": "health.ae_attendance",
    }
    assert set(items[own.event_id]) == {
        "event_id",
        "event_type",
        "partner_id",
        "occurred_at",
        "purpose",
    }
    assert health_consented.event_id not in items
    # Summaries come only from shown fields: health's partner id and dates are not granted.
    assert list(shown["partners"]) == [SCHOOL]
    assert shown["partners"][SCHOOL]["source_refs"] == ["HSG-0042"]
    assert shown["needs"] == {"education": ["suspension"], "health": ["ae_attendance"]}
    assert shown["last_event_at"] == own.occurred_at.isoformat().replace("+00:00", "Z")
    text = json.dumps(shown)
    assert factories.NHS_TOKEN not in text and "sources" not in text


def test_source_refs_and_location_follow_the_grants() -> None:
    rules = bases(agreement(fields={Role.PRACTITIONER: ["event_type", "partner_id"]}))
    view = view_of(consented(partner=HOUSING), agreed(partner=HEALTH))
    shown = present("p-1", select(view, lambda e: rules.fields(e, HOUSING_READER)), HOUSING_READER)
    assert shown["partners"] == {
        HOUSING: {"last_contact": shown["last_event_at"], "source_refs": ["HSG-0042"]},
        HEALTH: {},  # no date granted: no last contact
    }
    assert shown["area_code"] == "E05000001"  # from housing's own entry
    only_health = present(
        "p-1",
        select(view_of(agreed(partner=HEALTH)), lambda e: rules.fields(e, HOUSING_READER)),
        HOUSING_READER,
    )
    assert only_health["area_code"] is None and only_health["last_event_at"] is None


def test_the_owners_of_a_read_are_the_other_partners_shown() -> None:
    rules = bases(agreement(partners=(HOUSING, HEALTH, SCHOOL)))
    view = view_of(consented(partner=HOUSING), agreed(partner=HEALTH), agreed(partner=SCHOOL))
    shown = select(view, lambda e: rules.fields(e, SCHOOL_READER))
    assert owners(shown, SCHOOL_READER) == [HEALTH]  # housing's consent does not share with it
