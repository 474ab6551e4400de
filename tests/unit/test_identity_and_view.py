from datetime import timedelta

from hub.identity import person_id_for, resolve
from hub.models import EducationEvent, EducationKind
from hub.view import MAX_TIMELINE, fold, minimise
from tests.unit import factories


def test_new_person_is_minted_from_the_strongest_token() -> None:
    tokens = [factories.COUNCIL_TOKEN, factories.NHS_TOKEN]
    person_id, new = resolve(tokens, {}.get)
    assert person_id == person_id_for(factories.NHS_TOKEN)
    assert sorted(new) == sorted(tokens)


def test_known_token_links_new_tokens_to_the_same_person() -> None:
    known = {factories.NHS_TOKEN: "p-known"}
    person_id, new = resolve([factories.COUNCIL_TOKEN, factories.NHS_TOKEN], known.get)
    assert person_id == "p-known"
    assert new == [factories.COUNCIL_TOKEN]


def test_person_id_hides_the_token() -> None:
    pid = person_id_for(factories.NHS_TOKEN)
    assert pid.startswith("p-") and factories.NHS_TOKEN.split(":")[1][:10] not in pid


def test_fold_joins_partners_and_needs_and_ignores_replays() -> None:
    housing = factories.event()
    school = factories.event(
        partner_id="northfield-school",
        payload=EducationEvent(kind=EducationKind.SUSPENSION),
        occurred_at=factories.WHEN - timedelta(days=1),
    )
    view = fold(None, "p-1", housing)
    assert view is not None
    view = fold(view, "p-1", school)
    assert view is not None
    assert view.event_count == 2
    assert set(view.partners) == {"council-housing", "northfield-school"}
    assert view.needs == {"housing": ["arrears"], "education": ["suspension"]}
    assert [entry.partner_id for entry in view.timeline] == ["northfield-school", "council-housing"]
    assert fold(view, "p-1", housing) is None  # the same event id twice counts once


def test_timeline_is_bounded() -> None:
    view = None
    for n in range(MAX_TIMELINE + 5):
        view = (
            fold(view, "p-1", factories.event(occurred_at=factories.WHEN + timedelta(minutes=n)))
            or view
        )
    assert view is not None
    assert len(view.timeline) == MAX_TIMELINE
    assert view.event_count == MAX_TIMELINE + 5


def test_minimise_shows_source_refs_only_to_their_partner() -> None:
    view = fold(None, "p-1", factories.event())
    assert view is not None
    own = minimise(view, "council-housing")
    other = minimise(view, "city-health")
    assert own["partners"]["council-housing"]["source_refs"] == ["HSG-0042"]
    assert "source_refs" not in other["partners"]["council-housing"]
    assert "tokens" not in own
