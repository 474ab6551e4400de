"""A person's access history for a subject access request (issue 12, item 6), against the
real broker: a practitioner's read shows up for the privacy officer, nobody else may ask,
and asking is itself audited."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from connectors import Publisher
from connectors.simulate import synthetic_nhs_number
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_person_reads import (
    HOUSING,
    HOUSING_EVENT,
    HOUSING_TOKEN,
    agreement,
    draft,
    person,
    shown_to,
)

OFFICER_TOKEN = "demo-privacy-officer-housing"


def accesses(worker: WorkerProcess, path: str) -> list[dict[str, Any]]:
    """The privacy officer's listing of ``path``'s accesses (it must be answered, 200)."""
    reply = worker.get(f"{path}/access", token=OFFICER_TOKEN)
    assert reply.status_code == 200, reply.text
    assert reply.json()["truncated"] is False
    listed: list[dict[str, Any]] = reply.json()["accesses"]
    return listed


def test_a_privacy_officer_sees_who_read_a_person_and_the_asking_is_audited(
    worker: WorkerProcess,
) -> None:
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(21))
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0042"))
    path = person(worker, nhs)
    person_id = path.rsplit("/", 1)[1]
    shown_to(worker, path, HOUSING_TOKEN, 1)  # the read is audited before it is answered

    # Nobody has been looked up as p-nobody: the answer is "nothing", not a 404.
    assert accesses(worker, "/v1/people/p-nobody") == []
    listed = accesses(worker, path)
    assert listed, "the practitioner's read is not listed"
    newest = listed[0]
    assert (newest["action"], newest["outcome"]) == ("person.read", "ok")
    assert (newest["role"], newest["actor_partner"]) == ("practitioner", HOUSING)
    assert set(newest) == {"at", "action", "outcome", "role", "actor_partner"}  # no user id
    times = [datetime.fromisoformat(entry["at"]) for entry in listed]
    assert times == sorted(times, reverse=True)

    # Only privacy officers ask, and they read no person data themselves.
    practitioner = worker.get(f"{path}/access", token=HOUSING_TOKEN)
    assert practitioner.status_code == 403, practitioner.text
    assert worker.get(f"{path}/access", token=None).status_code == 401
    assert worker.get(path, token=OFFICER_TOKEN).status_code == 403

    # Each of those is in the trail, with this person's id, before it was answered.
    serde = Serde(SchemaRegistry(s))
    trail = [
        serde.decode_record(value, "AuditRecord")
        for _, value, _ in read_topic(s, Topics(s.topic_prefix).audit)
    ]
    about = {
        f"{r['actor']} {r['action']} {r['outcome']}" for r in trail if r["person_id"] == person_id
    }
    assert {
        "pat.privacy.housing person.access-history ok",
        "alex.housing person.access-history denied",
        "pat.privacy.housing person.read denied",
    } <= about
    assert any(
        r["person_id"] == "p-nobody" and r["action"] == "person.access-history" for r in trail
    )
    # The next listing shows those calls too, the officer's own included.
    shown = {
        (e["role"], e["action"], e["outcome"], e["actor_partner"]) for e in accesses(worker, path)
    }
    assert {
        ("privacy-officer", "person.access-history", "ok", HOUSING),
        ("practitioner", "person.access-history", "denied", HOUSING),
        ("privacy-officer", "person.read", "denied", HOUSING),
    } <= shown
