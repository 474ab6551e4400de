from datetime import timedelta

from hub.access import Reader, present, select
from hub.agreements import ENTRY_FIELDS
from hub.models import (
    CareService,
    EducationEvent,
    EducationKind,
    SocialCareEvent,
    SocialCareKind,
)
from hub.stages.view import (
    MAX_ENTRIES,
    PersonView,
    absorb,
    entry_for,
    erase_basis,
    fold,
    overflow,
    prune,
    split,
)
from hub.users import Role
from tests.unit import factories


def entry(source: str = "partner.council-housing.events:0:1", **kwargs):  # type: ignore[no-untyped-def]
    return entry_for(factories.event(**kwargs), source)


def test_fold_joins_partners_and_needs_and_ignores_replays() -> None:
    housing = entry()
    school = entry(
        partner_id="northfield-school",
        payload=EducationEvent(kind=EducationKind.SUSPENSION),
        occurred_at=factories.WHEN - timedelta(days=1),
    )
    first, outcome = fold(None, "p-1", housing)
    assert outcome == "folded"
    view, _ = fold(first, "p-1", school)
    assert view is not None
    assert [(e.partner_id, e.event_type) for e in view.entries] == [
        ("northfield-school", "education.suspension"),  # in time order
        ("council-housing", "housing.arrears"),
    ]
    assert fold(view, "p-1", housing) == (None, "redelivered")  # the same record again


def test_a_resent_event_is_a_duplicate_remembered_by_its_source() -> None:
    original = entry(source="t:0:1")
    view, _ = fold(None, "p", original)
    resent = original.model_copy(update={"sources": ["t:0:9"]})
    again, outcome = fold(view, "p", resent)
    assert outcome == "duplicate"
    assert again is not None and again.entries[0].sources == ["t:0:1", "t:0:9"]
    assert fold(again, "p", resent) == (None, "redelivered")


def test_fold_is_order_independent() -> None:
    entries = [entry(occurred_at=factories.WHEN + timedelta(minutes=n % 3)) for n in range(6)]
    forward = backward = None
    for e in entries:
        forward = fold(forward, "p", e)[0] or forward
    for e in reversed(entries):
        backward = fold(backward, "p", e)[0] or backward
    assert forward == backward


def test_entries_over_the_bounds_go_oldest_first_and_are_returned() -> None:
    entries = [entry(occurred_at=factories.WHEN + timedelta(minutes=n)) for n in range(1005)]
    view = absorb(None, "p", entries)
    assert len(view.entries) == 1005  # folding keeps everything: the stage applies bounds
    kept, removed = overflow(view)
    assert len(kept.entries) == MAX_ENTRIES and removed == view.entries[:5]
    kept, removed = overflow(view, max_bytes=100 * len(entries[0].model_dump_json()))
    assert len(kept.entries) < 100 and kept.entries == view.entries[-len(kept.entries) :]
    assert removed == view.entries[: -len(kept.entries)]


def test_absorb_merges_without_duplicates() -> None:
    a, b = entry(), entry()
    view = absorb(PersonView(person_id="p", entries=[a]), "p", [a, b])
    assert [e.event_id for e in view.entries] == sorted(
        [a.event_id, b.event_id], key=lambda i: (factories.WHEN, i)
    )


def test_split_shares_entries_by_token() -> None:
    nhs_entry = entry(tokens=[factories.NHS_TOKEN])
    council_entry = entry(tokens=[factories.COUNCIL_TOKEN])
    view = absorb(None, "p", [nhs_entry, council_entry])
    shares = split(view, {"p-a": [factories.NHS_TOKEN], "p-b": [factories.COUNCIL_TOKEN]})
    assert shares == {"p-a": [nhs_entry], "p-b": [council_entry]}


def test_an_entry_carrying_both_sides_of_a_split_stays_with_its_strongest_token() -> None:
    """Whatever order the partner listed its identifiers in (it went by that order)."""
    both = entry(tokens=[factories.COUNCIL_TOKEN, factories.NHS_TOKEN])
    view = absorb(None, "p", [both])
    shares = split(view, {"p-a": [factories.NHS_TOKEN], "p-b": [factories.COUNCIL_TOKEN]})
    assert shares == {"p-a": [both], "p-b": []}


def test_erase_basis_removes_only_that_basis() -> None:
    kept, gone = entry(consent_id="c-2"), entry(consent_id="c-1")
    view = absorb(None, "p", [kept, gone])
    remaining, removed = erase_basis(view, "consent:c-1")
    assert removed == [gone] and remaining is not None and remaining.entries == [kept]
    assert erase_basis(remaining, "consent:c-2")[0] is None


def test_prune_drops_entries_past_retention() -> None:
    old = entry(occurred_at=factories.WHEN - timedelta(days=40))
    new = entry()
    view = absorb(None, "p", [old, new])
    pruned, removed = prune(view, factories.WHEN, lambda basis: timedelta(days=30))
    assert pruned is not None and pruned.entries == [new] and removed == [old]
    assert prune(pruned, factories.WHEN, lambda basis: timedelta(days=30)) == (pruned, [])


def test_lead_partners_hold_an_open_plan() -> None:
    opened = entry(
        partner_id="city-social-care",
        payload=SocialCareEvent(kind=SocialCareKind.PLAN_OPENED, service=CareService.EARLY_HELP),
    )
    closed = entry(
        partner_id="city-social-care",
        payload=SocialCareEvent(kind=SocialCareKind.PLAN_CLOSED, service=CareService.EARLY_HELP),
        occurred_at=factories.WHEN + timedelta(days=1),
    )
    reader = Reader("sam.care", Role.PRACTITIONER, "city-social-care")

    def lead(view: PersonView) -> list[str]:
        shown = present("p", select(view, lambda entry: ENTRY_FIELDS), reader)
        return list(shown["lead_partners"])

    assert lead(absorb(None, "p", [opened])) == ["city-social-care"]
    assert lead(absorb(None, "p", [opened, closed])) == []


def test_event_ids_are_unique_per_partner_so_one_partner_cannot_pre_empt_another() -> None:
    housing = entry(event_id="00000000-0000-4000-8000-000000000001")
    health = entry(
        event_id="00000000-0000-4000-8000-000000000001",
        partner_id="city-health",
        source="partner.city-health.events:0:1",
    )
    view, _ = fold(None, "p", housing)
    view, outcome = fold(view, "p", health)
    assert outcome == "folded"
    assert view is not None and {e.partner_id for e in view.entries} == {
        "council-housing",
        "city-health",
    }


def test_a_full_view_drops_from_the_partner_holding_most_so_others_keep_theirs() -> None:
    """1,000 newer events from one partner no longer push another's older ones out."""
    flood = [entry(occurred_at=factories.WHEN + timedelta(seconds=n)) for n in range(MAX_ENTRIES)]
    older = factories.WHEN - timedelta(days=1)
    others = [
        entry(
            partner_id="city-health",
            source=f"partner.city-health.events:0:{n}",
            occurred_at=older,
        )
        for n in range(5)
    ]
    view = absorb(None, "p", [*flood, *others])
    kept, removed = overflow(view)
    assert len(kept.entries) == MAX_ENTRIES
    kept_others = [e for e in kept.entries if e.partner_id == "city-health"]
    assert sorted(e.event_id for e in kept_others) == sorted(e.event_id for e in others)
    assert removed == flood[:5]  # the flooding partner's oldest
