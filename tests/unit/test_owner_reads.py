"""A data owner's list of reads (``hub.owner_reads``): which audit records it holds, who may
ask, and the ``since`` its query may give."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from multidict import MultiDict

from hub.models import AuditRecord, utc_now
from hub.owner_reads import DEFAULT_SINCE_DAYS, BadListing, may_list, reads_of, since_of
from hub.users import Role, User

HOUSING, SCHOOL = "council-housing", "northfield-school"
NOW = utc_now()


def record(minutes_ago: int, owners: list[str], outcome: str = "ok", **kw: Any) -> AuditRecord:
    return AuditRecord(
        audit_id=f"a-{minutes_ago}",
        at=NOW - timedelta(minutes=minutes_ago),
        actor=kw.get("actor", "sam.school"),
        role="practitioner",
        action=kw.get("action", "person.read"),
        person_id="p-1",
        outcome=outcome,  # type: ignore[arg-type]
        owners=owners,
    )


def user(role: Role, partner: str | None) -> User:
    return User(id="u", role=role, partner=partner, token_sha256="0" * 64)


def test_the_list_holds_reads_that_showed_the_owners_data_newest_first() -> None:
    records = [
        record(30, [HOUSING, SCHOOL]),
        record(20, [SCHOOL]),  # none of housing's data
        record(10, [HOUSING], action="person.lookup"),
        record(5, [HOUSING], outcome="denied"),  # refused: showed nothing
        record(3, []),  # a v1 record, or an answer that showed nothing
    ]
    partner_of = {"sam.school": SCHOOL}.get
    reads, truncated = reads_of(HOUSING, records, lambda r: partner_of(r.actor), NOW - timedelta(1))
    assert [(r.audit_id, r.action, r.actor_partner) for r in reads] == [
        ("a-10", "person.lookup", SCHOOL),
        ("a-30", "person.read", SCHOOL),
    ]
    assert not truncated
    recent, _ = reads_of(HOUSING, records, lambda r: None, NOW - timedelta(minutes=15))
    assert [r.audit_id for r in recent] == ["a-10"]
    newest, truncated = reads_of(HOUSING, records, lambda r: None, NOW - timedelta(1), limit=1)
    assert [r.audit_id for r in newest] == ["a-10"] and truncated
    assert "actor" not in newest[0].to_json() and newest[0].to_json()["at"].endswith("Z")


@pytest.mark.parametrize(
    ("role", "partner", "allowed"),
    [
        (Role.PARTNER, HOUSING, True),
        (Role.PRIVACY_OFFICER, HOUSING, True),
        (Role.STEWARD, None, True),
        (Role.ADMIN, None, True),
        (Role.PARTNER, SCHOOL, False),
        (Role.PRIVACY_OFFICER, SCHOOL, False),
        (Role.PRACTITIONER, HOUSING, False),
    ],
)
def test_who_may_list_a_partners_reads(role: Role, partner: str | None, allowed: bool) -> None:
    assert may_list(user(role, partner), HOUSING) is allowed


def test_since_defaults_and_refusals() -> None:
    assert since_of(MultiDict(), NOW) == NOW - timedelta(days=DEFAULT_SINCE_DAYS)
    given = NOW - timedelta(hours=2)
    assert since_of(MultiDict(since=given.isoformat()), NOW) == given
    assert since_of(MultiDict(since="2026-01-01T00:00:00Z"), NOW).tzinfo is not None
    later = (NOW + timedelta(hours=1)).isoformat()
    for bad in (
        MultiDict(since="soon"),
        MultiDict(since="2026-01-01T00:00:00"),  # no offset
        MultiDict(since=later),
        MultiDict([("since", given.isoformat()), ("since", given.isoformat())]),
    ):
        with pytest.raises(BadListing, match=r"^since: "):
            since_of(bad, NOW)
