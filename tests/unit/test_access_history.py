"""A person's access history for a subject access request: which audit records it lists,
in what order, how it is cut short, and which partner it names for each actor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.access import refusal
from hub.access_history import HUB_PARTNER, actor_partner, history_of
from hub.config import PROJECT_ROOT
from hub.models import AuditRecord
from hub.stages.effects import audit_record
from hub.users import Role, UserDirectory

USERS = UserDirectory.load(PROJECT_ROOT / "deploy/local/users.yaml")
NOW = datetime.now(UTC).replace(microsecond=0)


def record(
    person_id: str | None,
    minutes_ago: int,
    actor: str = "alex.housing",
    role: str = "practitioner",
    action: str = "person.read",
) -> AuditRecord:
    return AuditRecord(
        audit_id=f"a-{minutes_ago}",
        at=NOW - timedelta(minutes=minutes_ago),
        actor=actor,
        role=role,
        action=action,
        person_id=person_id,
        outcome="ok",
    )


def test_the_history_is_the_persons_records_newest_first() -> None:
    records = [
        record("p-1", 30),
        record("p-2", 20),  # another person on the same partition
        record(None, 15, action="quarantine.drop.withdrawn"),
        record("p-1", 10, actor="sam.school"),
        record("p-1", 40, actor="jo.steward", role="steward"),
    ]
    history = history_of("p-1", records, lambda r: r.actor)
    assert [entry.at for entry in history.entries] == [
        NOW - timedelta(minutes=m) for m in (10, 30, 40)
    ]
    assert [entry.actor_partner for entry in history.entries] == [
        "sam.school",
        "alex.housing",
        "jo.steward",
    ]
    assert not history.truncated


def test_a_long_history_keeps_the_newest_and_says_it_was_cut() -> None:
    records = [record("p-1", minutes) for minutes in range(5)]
    cut = history_of("p-1", records, lambda r: None, limit=3)
    assert [e.at for e in cut.entries] == [NOW - timedelta(minutes=m) for m in (0, 1, 2)]
    assert cut.truncated
    assert not history_of("p-1", records, lambda r: None, limit=5).truncated


def test_an_unknown_person_has_an_empty_history() -> None:
    """Not an error: 'nothing' is an answer to a subject access request."""
    history = history_of("p-nobody", [record("p-1", 1)], lambda r: None)
    assert history.to_json() == {"person_id": "p-nobody", "accesses": [], "truncated": False}


def test_an_entry_shows_when_what_outcome_role_and_partner_never_the_user() -> None:
    [entry] = history_of("p-1", [record("p-1", 0)], lambda r: "council-housing").entries
    assert entry.to_json() == {
        "at": NOW.isoformat().replace("+00:00", "Z"),
        "action": "person.read",
        "outcome": "ok",
        "role": "practitioner",
        "actor_partner": "council-housing",
    }


def test_the_actors_partner_comes_from_the_users_file() -> None:
    assert actor_partner(record("p-1", 0), USERS) == "council-housing"
    assert actor_partner(record("p-1", 0, actor="sam.school"), USERS) == "northfield-school"
    # The hub's own records (erasure, expiry) name the hub.
    assert actor_partner(audit_record("person.erase", "p-1", NOW), USERS) == HUB_PARTNER
    # A steward or admin acts for no partner; a user since removed cannot be placed.
    assert actor_partner(record("p-1", 0, actor="jo.steward", role="steward"), USERS) is None
    assert actor_partner(record("p-1", 0, actor="left.in.2020"), USERS) is None
    # A user who happens to be called hub is not the hub.
    assert actor_partner(record("p-1", 0, actor="hub"), USERS) is None


def test_the_demo_privacy_officer_acts_for_housing_and_reads_no_person_data() -> None:
    officer = USERS.authenticate("Bearer demo-privacy-officer-housing")
    assert officer is not None and officer.role is Role.PRIVACY_OFFICER
    assert officer.partner == "council-housing"
    assert refusal(officer) == "role privacy-officer may not read person views"
