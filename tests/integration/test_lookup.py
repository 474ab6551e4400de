"""Finding a person from one's own record (issue 12, item 1), against the real broker:
``GET /v1/people?source_ref=...`` answers a practitioner with the view ``GET
/v1/people/{id}`` gives them, the same 404 for a ref that is unknown or another
organisation's, nothing once the ref's entry is withdrawn, and an audit record per lookup.
"""

from __future__ import annotations

import random
from typing import Any

import requests

from connectors import ConsentDraft, Publisher
from connectors.simulate import synthetic_nhs_number
from hub.models import ConsentStatus
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, free_port, wait_for_records
from tests.integration.test_person_reads import (
    HEALTH,
    HEALTH_EVENT,
    HOUSING,
    HOUSING_EVENT,
    HOUSING_TOKEN,
    SCHOOL,
    SCHOOL_EVENT,
    SCHOOL_TOKEN,
    agreement,
    consent,
    draft,
    person,
    shown_to,
)

LOOKUP = "/v1/people"


def lookup(worker: WorkerProcess, ref: str | None, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {} if ref is None else {"source_ref": ref}
    return requests.get(f"{worker.url}{LOOKUP}", params=params, headers=headers, timeout=10)


def lookups_audited(worker: WorkerProcess, expected: int) -> list[dict[str, Any]]:
    """The ``person.lookup`` audit records, once there are ``expected`` of them."""
    serde = Serde(SchemaRegistry(worker.settings))

    def of_lookups(records: list[Any]) -> list[dict[str, Any]]:
        decoded = (serde.decode_record(value, "AuditRecord") for _, value, _ in records)
        return [r for r in decoded if r["action"] == "person.lookup"]

    records = wait_for_records(
        worker.settings,
        Topics(worker.settings.topic_prefix).audit,
        expected,
        until=lambda records: len(of_lookups(records)) >= expected,
        expecting=f"{expected} person.lookup audit records",
    )
    return of_lookups(records)


def test_a_practitioner_finds_the_person_of_their_own_record_and_no_one_else_does(
    worker: WorkerProcess,
) -> None:
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(21))
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0042"))
    with Publisher(SCHOOL, "sims", s) as school:
        school.publish(draft(nhs, SCHOOL_EVENT, agreement(TEST_AGREEMENT_ID), "SCH-7", 1))
    path = person(worker, nhs)
    person_id = path.rsplit("/", 1)[1]
    by_id = shown_to(worker, path, HOUSING_TOKEN, 2)

    found = lookup(worker, "HSG-0042", HOUSING_TOKEN)
    assert found.status_code == 200, found.text
    assert found.json() == by_id  # exactly the view GET /v1/people/{id} gives
    assert found.json()["person_id"] == person_id
    # The school's own record finds the same person, as the school may see them.
    assert lookup(worker, "SCH-7", SCHOOL_TOKEN).json() == worker.get(path, SCHOOL_TOKEN).json()

    # Another organisation's ref and a ref nobody has: one and the same 404.
    not_theirs = lookup(worker, "HSG-0042", SCHOOL_TOKEN)
    unknown = lookup(worker, "HSG-9999", HOUSING_TOKEN)
    assert not_theirs.status_code == unknown.status_code == 404
    assert not_theirs.json() == unknown.json()
    # Refused queries name the field and the rule, never the value.
    for ref in (None, "not a ref!", "x" * 65, "943 476 5919"):
        bad = lookup(worker, ref, HOUSING_TOKEN)
        assert bad.status_code == 422, bad.text
        assert bad.json()["title"].startswith("source_ref: ")
        assert ref is None or ref not in bad.text
    named = requests.get(
        f"{worker.url}{LOOKUP}",
        params={"source_ref": "SCH-7", "partner": SCHOOL},
        headers={"Authorization": f"Bearer {HOUSING_TOKEN}"},
        timeout=10,
    )
    assert named.status_code == 422 and named.json()["title"].startswith("partner: ")
    assert lookup(worker, "HSG-0042", None).status_code == 401
    admin = lookup(worker, "HSG-0042", "demo-admin")
    assert admin.status_code == 403, admin.text

    audited = lookups_audited(worker, 5)
    outcomes = sorted((r["role"], r["outcome"], r["person_id"]) for r in audited)
    assert outcomes == [
        ("admin", "denied", None),
        ("practitioner", "not-found", None),
        ("practitioner", "not-found", None),
        ("practitioner", "ok", person_id),
        ("practitioner", "ok", person_id),
    ]
    housing_read = next(r for r in audited if r["actor"] == "alex.housing" and r["outcome"] == "ok")
    assert housing_read["owners"] == sorted([HOUSING, SCHOOL])
    school_read = next(r for r in audited if r["actor"] == "sam.school" and r["outcome"] == "ok")
    assert school_read["owners"] == sorted([HOUSING, SCHOOL])  # the school sees both too
    # The ref travels in no audit record and in no line of the worker's log.
    assert not any("HSG-0042" in repr(r) for r in audited)
    assert "HSG-0042" not in worker.log_path.read_text(errors="replace")


def test_a_withdrawn_entry_no_longer_finds_its_person(worker: WorkerProcess) -> None:
    """Housing's record is in the view under a consent; the health entry keeps the person's
    view alive after the withdrawal, but housing's ref leaves it, so it finds no one."""
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(22))
    withdrawal = ConsentDraft(
        consent_id="c-9",
        identifiers={"nhs": nhs},
        purposes=["early-help"],
        sharing_partners=[HOUSING, HEALTH],
    )
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish_consent(withdrawal)
        housing.publish(draft(nhs, HOUSING_EVENT, consent("c-9"), "HSG-0077"))
        housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0078", 1))
    path = person(worker, nhs)
    shown_to(worker, path, HOUSING_TOKEN, 2)
    assert lookup(worker, "HSG-0077", HOUSING_TOKEN).status_code == 200

    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish_consent(withdrawal.model_copy(update={"status": ConsentStatus.WITHDRAWN}))
    shown_to(worker, path, HOUSING_TOKEN, 1)  # the barrier: the erasure has reached the view

    gone = lookup(worker, "HSG-0077", HOUSING_TOKEN)
    assert gone.status_code == 404, gone.text
    assert gone.json() == lookup(worker, "HSG-9999", HOUSING_TOKEN).json()
    kept = lookup(worker, "HSG-0078", HOUSING_TOKEN)  # the agreement's entry is still there
    assert kept.status_code == 200 and kept.json()["event_count"] == 1


def test_each_of_two_workers_finds_people_the_other_holds(make_worker: WorkerFactory) -> None:
    first = make_worker()
    second = make_worker(web_port=free_port(), state_dir=first.settings.state_dir.parent / "w2")
    s, rng = first.settings, random.Random(23)
    refs = {f"HSG-{n:04d}": synthetic_nhs_number(rng) for n in range(8)}
    with Publisher(HOUSING, "northgate", s) as housing:
        for ref, nhs in refs.items():
            housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), ref))
    with Publisher(HEALTH, "emis", s) as health:  # health's entries stay out of its lookups
        health.publish(draft(refs["HSG-0000"], HEALTH_EVENT, agreement(TEST_AGREEMENT_ID), "R1"))
    for ref, nhs in refs.items():
        path = person(first, nhs)
        for worker in (first, second):
            shown_to(worker, path, HOUSING_TOKEN, 2 if ref == "HSG-0000" else 1)
            found = lookup(worker, ref, HOUSING_TOKEN)
            assert found.status_code == 200, found.text
            assert found.json()["person_id"] == path.rsplit("/", 1)[1]
    assert lookup(second, "R1", HOUSING_TOKEN).status_code == 404


def test_a_record_whose_events_sit_with_two_people_names_both(worker: WorkerProcess) -> None:
    """Housing's record HSG-0500 carries two NHS numbers that nothing links: two people,
    each holding the ref. The lookup names both (409) for the practitioner to read each."""
    s, rng = worker.settings, random.Random(24)
    first, second = synthetic_nhs_number(rng), synthetic_nhs_number(rng)
    with Publisher(HOUSING, "northgate", s) as housing:
        for n, nhs in enumerate((first, second)):
            housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0500", n))
    paths = [person(worker, nhs) for nhs in (first, second)]
    for path in paths:
        shown_to(worker, path, HOUSING_TOKEN, 1)

    both = lookup(worker, "HSG-0500", HOUSING_TOKEN)
    assert both.status_code == 409, both.text
    assert both.json()["person_ids"] == sorted(path.rsplit("/", 1)[1] for path in paths)
    assert both.json()["title"].startswith("source_ref: ") and "HSG-0500" not in both.text
    audited = lookups_audited(worker, 2)
    assert sorted(r["person_id"] for r in audited) == both.json()["person_ids"]
    assert {(r["outcome"], tuple(r["owners"])) for r in audited} == {("ok", ())}
