"""A data owner lists who read its data (issue 12, item 6), against the real broker: reads
and lookups that showed a partner's entries are in its list (who by organisation and role,
when, whom, what action), reads that showed none of them are not, and only the partner
itself, stewards and admins may list it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from connectors import Publisher
from connectors.simulate import synthetic_nhs_number
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID
from tests.integration.helpers import WorkerProcess, wait_for_records
from tests.integration.test_person_reads import (
    HOUSING,
    HOUSING_EVENT,
    HOUSING_TOKEN,
    SCHOOL,
    SCHOOL_EVENT,
    SCHOOL_TOKEN,
    agreement,
    draft,
    person,
    shown_to,
)

HOUSING_FEED, SCHOOL_FEED = "demo-partner-housing", "demo-partner-school"


def reads(worker: WorkerProcess, partner: str, token: str | None, **query: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(
        f"{worker.url}/v1/partners/{partner}/reads", params=query, headers=headers, timeout=30
    )


def listed(worker: WorkerProcess, partner: str, token: str, **query: str) -> set[tuple[Any, ...]]:
    reply = reads(worker, partner, token, **query)
    assert reply.status_code == 200, reply.text
    return {
        (r["action"], r["person_id"], r["actor_partner"], r["role"]) for r in reply.json()["reads"]
    }


def test_an_owner_lists_the_reads_of_its_data_and_only_those(worker: WorkerProcess) -> None:
    s, rng = worker.settings, random.Random(31)
    both, housing_only = synthetic_nhs_number(rng), synthetic_nhs_number(rng)
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish(draft(both, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-1"))
        housing.publish(draft(housing_only, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-2"))
    with Publisher(SCHOOL, "sims", s) as school:
        school.publish(draft(both, SCHOOL_EVENT, agreement(TEST_AGREEMENT_ID), "SCH-1", 1))
    shared, housing_path = person(worker, both), person(worker, housing_only)
    shared_id, housing_id = shared.rsplit("/", 1)[1], housing_path.rsplit("/", 1)[1]

    # The school reads the shared person (housing's data and its own); later, housing reads
    # and looks up the person only housing holds (none of the school's data).
    shown_to(worker, shared, SCHOOL_TOKEN, 2)
    between = datetime.now(UTC)
    shown_to(worker, housing_path, HOUSING_TOKEN, 1)
    found = requests.get(
        f"{worker.url}/v1/people",
        params={"source_ref": "HSG-2"},
        headers={"Authorization": f"Bearer {HOUSING_TOKEN}"},
        timeout=10,
    )
    assert found.status_code == 200, found.text
    assert worker.get(shared, "demo-admin").status_code == 403  # denied: showed nothing

    school_read = ("person.read", shared_id, SCHOOL, "practitioner")
    housing_reads = {
        ("person.read", housing_id, HOUSING, "practitioner"),
        ("person.lookup", housing_id, HOUSING, "practitioner"),
    }
    assert listed(worker, HOUSING, HOUSING_FEED) == {school_read, *housing_reads}
    assert listed(worker, SCHOOL, SCHOOL_FEED) == {school_read}
    # A steward or admin lists any partner; the partner's privacy officer lists its own.
    assert listed(worker, SCHOOL, "demo-steward") == {school_read}
    assert listed(worker, HOUSING, "demo-privacy-officer-housing") == {school_read, *housing_reads}
    assert listed(worker, HOUSING, "demo-admin", since=between.isoformat()) == housing_reads

    body = reads(worker, HOUSING, HOUSING_FEED).json()
    assert {"audit_id", "at"} <= set(body["reads"][0]) and "actor" not in body["reads"][0]
    assert [r["at"] for r in body["reads"]] == sorted(
        (r["at"] for r in body["reads"]), reverse=True
    )

    # Nobody else lists a partner's reads; bad queries name the field and rule.
    assert reads(worker, HOUSING, SCHOOL_FEED).status_code == 403
    assert reads(worker, HOUSING, HOUSING_TOKEN).status_code == 403  # a practitioner
    assert reads(worker, HOUSING, None).status_code == 401
    assert reads(worker, "nobody", "demo-steward").status_code == 404
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for since in (future, "yesterday", "2026-01-01T00:00:00"):
        bad = reads(worker, HOUSING, HOUSING_FEED, since=since)
        assert bad.status_code == 422 and bad.json()["title"].startswith("since: "), bad.text
        assert since not in bad.text

    # The listings are audited too: six listings, two refusals.
    serde = Serde(SchemaRegistry(s))

    def of_listings(records: list[Any]) -> list[str]:
        decoded = (serde.decode_record(value, "AuditRecord") for _, value, _ in records)
        return [f"{r['role']} {r['outcome']}" for r in decoded if r["action"] == "partner.reads"]

    records = wait_for_records(
        s,
        Topics(s.topic_prefix).audit,
        1,
        until=lambda records: len(of_listings(records)) >= 8,
        expecting="the listings' audit records",
    )
    assert sorted(of_listings(records)) == sorted(
        [
            "partner ok",
            "partner ok",
            "partner ok",
            "steward ok",
            "privacy-officer ok",
            "admin ok",
            "partner denied",
            "practitioner denied",
        ]
    )
