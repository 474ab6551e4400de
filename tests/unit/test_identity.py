from connectors.pseudonymise import token
from hub.stages.identity import IdentityStore, forget, join, mint, person_id_for, retract
from tests.unit import factories

NHS, COUNCIL = factories.NHS_TOKEN, factories.COUNCIL_TOKEN
UPN = token("upn", "A000000000000", factories.KEY)


def store() -> IdentityStore:
    return IdentityStore(token_person={}, people={})


def test_new_person_is_minted_from_the_strongest_token() -> None:
    s = store()
    change = join(s, [COUNCIL, NHS])
    assert change.person_id == person_id_for(NHS) == mint([COUNCIL, NHS])
    assert s.token_person == {NHS: change.person_id, COUNCIL: change.person_id}


def test_three_partners_three_identifiers_end_as_one_person_in_any_order() -> None:
    events = [[COUNCIL], [UPN], [NHS, COUNCIL], [UPN, NHS]]
    final = set()
    for order in (events, list(reversed(events)), events[2:] + events[:2]):
        s = store()
        for tokens in order:
            join(s, tokens)
        assert len(s.people) == 1
        final.add((tuple(sorted(s.token_person.items())), next(iter(s.people))))
    assert len(final) == 1  # the same person id and mapping whatever the order


def test_joining_two_known_people_reports_the_merge() -> None:
    s = store()
    council_person = join(s, [COUNCIL]).person_id
    nhs_person = join(s, [NHS]).person_id
    change = join(s, [COUNCIL, NHS])
    assert change.person_id == nhs_person
    assert change.merged == [council_person]
    assert council_person not in s.people


def test_known_person_with_nothing_new_changes_nothing() -> None:
    s = store()
    join(s, [NHS, COUNCIL])
    before = dict(s.people)
    change = join(s, [NHS])
    assert change.person_id == person_id_for(NHS) and change.merged == []
    assert s.people == before


def test_retracting_the_only_link_splits_back_to_the_original_people() -> None:
    s = store()
    join(s, [NHS])
    join(s, [UPN])
    join(s, [NHS, UPN], source="link:L1")
    assert len(s.people) == 1
    change = retract(s, NHS, UPN, "link:L1")
    assert change.splits == {
        person_id_for(NHS): {person_id_for(NHS): [NHS], person_id_for(UPN): [UPN]}
    }
    assert s.token_person == {NHS: person_id_for(NHS), UPN: person_id_for(UPN)}


def test_retraction_keeps_people_joined_by_other_evidence() -> None:
    s = store()
    join(s, [NHS, UPN], source="link:L1")
    join(s, [NHS, UPN])  # also seen together on a partner's record
    change = retract(s, NHS, UPN, "link:L1")
    assert change.splits == {}
    assert len(s.people) == 1


def test_edges_record_how_a_link_was_made_and_retraction_matches_it() -> None:
    s = store()
    join(s, [NHS], source="record")
    join(s, [NHS, UPN], source="link:l-1:northfield-school:verified_match")
    edges = next(iter(s.people.values()))["edges"]
    assert list(edges.values()) == [["link:l-1:northfield-school:verified_match"]]
    assert retract(s, NHS, UPN, "link:l-1:city-health").splits == {}  # not its link
    assert retract(s, NHS, UPN, "link:l-1:northfield-school").splits != {}


def test_retracting_an_unknown_link_is_harmless() -> None:
    s = store()
    join(s, [NHS])
    assert retract(s, NHS, UPN, "link:nope").splits == {}


def test_forget_erases_the_whole_person() -> None:
    s = store()
    join(s, [NHS, COUNCIL])
    erased = forget(s, [NHS])
    assert {p: sorted(t) for p, t in erased.items()} == {person_id_for(NHS): sorted([NHS, COUNCIL])}
    assert s.token_person == {} and s.people == {}


def test_person_id_hides_the_token() -> None:
    pid = person_id_for(NHS)
    assert pid.startswith("p-") and NHS.split(":")[1][:10] not in pid


def test_one_identifier_under_two_place_keys_is_one_person_not_a_review() -> None:
    """During a key rotation a partner sends the NHS number under the old and the new key."""
    from hub.stages.review import conflicts

    old_key, new_key = "nhs:aaaaaaaa:" + "A" * 43, "nhs:bbbbbbbb:" + "B" * 43
    assert not conflicts({}, {}, [old_key, new_key])
    assert conflicts({}, {}, [old_key, "nhs:aaaaaaaa:" + "C" * 43])
