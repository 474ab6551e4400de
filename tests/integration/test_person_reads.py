"""Person reads scoped to who signed up (issue 11, item 2), against the real broker.

Each test reproduces a finding of the trust review on a worker: consent entries read by
practitioners of partners the consent does not share with, agreement entries read by
partners that never signed, people read by organisations not involved with them, admins
reading person data, and every field shown whatever the agreement granted.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from connectors import ConsentDraft, EventDraft, Publisher
from connectors.pseudonymise import token
from connectors.simulate import synthetic_nhs_number
from hub.break_glass import break_glass_topic
from hub.models import (
    BasisKind,
    BreakGlassRead,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    Payload,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic, wait_for_records

HOUSING, SCHOOL, HEALTH = "council-housing", "northfield-school", "city-health"
HOUSING_TOKEN, SCHOOL_TOKEN = "demo-practitioner-housing", "demo-practitioner-school"
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
REASON = "Police report a credible threat to this person tonight; need contacts."


def agreement_file(folder: Path, agreement_id: str, partners: list[str], extra: str = "") -> None:
    """Another agreement beside the test one, in force around today."""
    today = datetime.now(UTC).date()
    (folder / f"{agreement_id}.yaml").write_text(
        f"id: {agreement_id}\ntitle: {agreement_id}\npartners: [{', '.join(partners)}]\n"
        'event_types: ["housing.*", "education.*", "health.*"]\npurposes: [early-help]\n'
        f"roles: [practitioner]\nretention_days: 730\n"
        f"valid_from: {today - timedelta(days=365)}\nvalid_to: {today + timedelta(days=365)}\n"
        + extra
    )


def draft(nhs: str, payload: Payload, basis: LawfulBasis, ref: str, minutes: int = 0) -> EventDraft:
    return EventDraft(
        source_ref=ref,
        identifiers={"nhs": nhs},
        basis=basis,
        payload=payload,
        occurred_at=WHEN + timedelta(minutes=minutes),
        area_code="E05000001",
    )


def consent(consent_id: str) -> LawfulBasis:
    return LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help")


def agreement(agreement_id: str) -> LawfulBasis:
    return LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id=agreement_id, purpose="early-help")


HOUSING_EVENT = HousingEvent(kind=HousingKind.ARREARS)
SCHOOL_EVENT = EducationEvent(kind=EducationKind.SUSPENSION)
HEALTH_EVENT = HealthEvent(kind=HealthKind.AE_ATTENDANCE)


def person(worker: WorkerProcess, nhs: str) -> str:
    return f"/v1/people/{person_id_for(token('nhs', nhs, worker.settings.place_key_bytes()))}"


def shown_to(worker: WorkerProcess, path: str, reader: str, count: int) -> dict[str, Any]:
    """The view ``reader`` gets once it holds ``count`` entries (the barrier: all landed)."""
    reply = worker.wait_for(
        path,
        lambda r: r.ok and r.json()["event_count"] == count,
        token=reader,
        expecting=f"{count} entries",
    )
    body: dict[str, Any] = reply.json()
    return body


def audited(worker: WorkerProcess, expected: set[str]) -> set[str]:
    """The audit trail's 'role action outcome' triples, once they include ``expected``."""
    serde = Serde(SchemaRegistry(worker.settings))

    def triples(records: list[Any]) -> set[str]:
        decoded = (serde.decode_record(value, "AuditRecord") for _, value, _ in records)
        return {f"{r['role']} {r['action']} {r['outcome']}" for r in decoded}

    records = wait_for_records(
        worker.settings,
        Topics(worker.settings.topic_prefix).audit,
        len(expected),
        until=lambda records: expected <= triples(records),
        expecting=f"audit records {sorted(expected)}",
    )
    return triples(records)


def test_entries_are_shown_only_to_sharing_partners_and_signatories(
    make_worker: WorkerFactory, agreements_dir: Path
) -> None:
    """A consent shared with housing and health, and an agreement health and housing signed
    (not the school): the school, involved through its own entry, sees neither."""
    agreement_file(agreements_dir, "dsa-health-housing", [HEALTH, HOUSING])
    worker = make_worker()
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(11))
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish_consent(
            ConsentDraft(
                consent_id="c-1",
                identifiers={"nhs": nhs},
                purposes=["early-help"],
                sharing_partners=[HOUSING, HEALTH],
            )
        )
        housing.publish(draft(nhs, HOUSING_EVENT, consent("c-1"), "HSG-0042"))
    with Publisher(HEALTH, "emis", s) as health:
        health.publish(draft(nhs, HEALTH_EVENT, consent("c-1"), "RX1-1", minutes=1))
        health.publish(draft(nhs, HEALTH_EVENT, agreement("dsa-health-housing"), "RX1-2", 2))
    with Publisher(SCHOOL, "sims", s) as school:
        school.publish(draft(nhs, SCHOOL_EVENT, agreement(TEST_AGREEMENT_ID), "SCH-7", 3))
    path = person(worker, nhs)

    # Housing shares the consent and signed both agreements: it sees all four.
    for_housing = shown_to(worker, path, HOUSING_TOKEN, 4)
    assert set(for_housing["partners"]) == {HOUSING, HEALTH, SCHOOL}
    # The school is neither a sharing partner of c-1 nor a signatory of dsa-health-housing.
    for_school = worker.get(path, token=SCHOOL_TOKEN).json()
    assert for_school["event_count"] == 1
    assert [item["partner_id"] for item in for_school["timeline"]] == [SCHOOL]
    assert for_school["needs"] == {"education": ["suspension"]}
    assert for_school["partners"] == {
        SCHOOL: {"last_contact": for_school["last_event_at"], "source_refs": ["SCH-7"]}
    }


def test_admins_and_stewards_read_no_person_data(worker: WorkerProcess) -> None:
    """Admin is a technical role, and stewards see places, not people: both refused, and
    the refusals audited."""
    nhs = synthetic_nhs_number(random.Random(14))
    with Publisher(HOUSING, "northgate", worker.settings) as housing:
        housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0042"))
    path = person(worker, nhs)
    shown_to(worker, path, HOUSING_TOKEN, 1)

    admin = worker.get(path, token="demo-admin")
    assert admin.status_code == 403, admin.text
    assert admin.json()["title"] == "role admin may not read person views"
    assert worker.get(path, token="demo-steward").status_code == 403
    denied = {"admin person.read denied", "steward person.read denied"}
    assert denied <= audited(worker, {*denied, "practitioner person.read ok"})


def test_fields_are_those_the_agreement_grants_the_role(
    make_worker: WorkerFactory, agreements_dir: Path
) -> None:
    extra = "fields:\n  practitioner: [event_type]\n"
    agreement_file(agreements_dir, "dsa-codes-only", [HOUSING, SCHOOL], extra)
    worker = make_worker()
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(12))
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish(draft(nhs, HOUSING_EVENT, agreement("dsa-codes-only"), "HSG-0042"))
    with Publisher(SCHOOL, "sims", s) as school:
        school.publish(draft(nhs, SCHOOL_EVENT, agreement(TEST_AGREEMENT_ID), "SCH-7", 1))
    path = person(worker, nhs)

    shown_to(worker, path, HOUSING_TOKEN, 2)
    for_school = shown_to(worker, path, SCHOOL_TOKEN, 2)
    housing_item = next(item for item in for_school["timeline"] if "partner_id" not in item)
    assert set(housing_item) == {"event_id", "event_type"}
    assert housing_item["event_type"] == "housing.arrears"
    assert set(for_school["partners"]) == {SCHOOL}  # housing's partner id is not granted
    assert for_school["needs"] == {"education": ["suspension"], "housing": ["arrears"]}


def break_glass(worker: WorkerProcess, path: str, reader: str, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {reader}"}
    return requests.post(f"{worker.url}{path}/break-glass", json=body, headers=headers, timeout=10)


def test_reading_a_person_one_is_not_involved_with_is_a_break_glass_read_the_owner_sees(
    worker: WorkerProcess,
) -> None:
    s, nhs = worker.settings, synthetic_nhs_number(random.Random(13))
    with Publisher(HOUSING, "northgate", s) as housing:
        housing.publish(draft(nhs, HOUSING_EVENT, agreement(TEST_AGREEMENT_ID), "HSG-0042"))
    path = person(worker, nhs)
    shown_to(worker, path, HOUSING_TOKEN, 1)

    # The school signed the agreement but has no entry (and no alert) about this person.
    refused = worker.get(path, token=SCHOOL_TOKEN)
    assert refused.status_code == 404, refused.text
    assert worker.get("/v1/people/p-nobody", token=SCHOOL_TOKEN).json() == refused.json()

    assert (
        break_glass(worker, path, SCHOOL_TOKEN, {"reason_code": "risk-to-life"}).status_code == 422
    )
    assert (
        break_glass(
            worker, path, "demo-admin", {"reason_code": "risk-to-life", "reason": REASON}
        ).status_code
        == 403
    )
    read = break_glass(
        worker, path, SCHOOL_TOKEN, {"reason_code": "risk-to-life", "reason": REASON}
    )
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["event_count"] == 1 and body["break_glass"]["reason_code"] == "risk-to-life"
    assert "source_refs" not in body["partners"][HOUSING]

    # The data owner's practitioners see who read their data, when, about whom and why
    # (the code); nobody else does.
    listing = worker.get(f"/v1/partners/{HOUSING}/break-glass", token=HOUSING_TOKEN)
    assert listing.status_code == 200, listing.text
    [entry] = listing.json()["reads"]
    person_id = path.rsplit("/", 1)[1]
    assert entry["actor"] == "sam.school" and entry["actor_partner"] == SCHOOL
    assert (entry["person_id"], entry["reason_code"]) == (person_id, "risk-to-life")
    assert entry["audit_id"] == body["break_glass"]["audit_id"]
    # The owner's own systems can read the topic: the catalogued BreakGlassRead contract.
    [(key, value, _)] = read_topic(s, break_glass_topic(s))
    stored = Serde(SchemaRegistry(s)).decode(value, BreakGlassRead)
    assert key == HOUSING.encode() and stored.audit_id == entry["audit_id"]
    assert worker.get(f"/v1/partners/{HOUSING}/break-glass", token=SCHOOL_TOKEN).status_code == 403
    assert (
        worker.get(f"/v1/partners/{SCHOOL}/break-glass", token=SCHOOL_TOKEN).json()["reads"] == []
    )

    triples = audited(
        worker,
        {
            "practitioner person.read denied",
            "practitioner person.break-glass ok",
            "admin person.break-glass denied",
        },
    )
    assert "practitioner person.read ok" in triples  # housing's reads
    # The written reason is checked, never kept: not in any reply, topic or the log.
    everywhere = [read.text, listing.text, worker.log_path.read_text(errors="replace")]
    for topic in (break_glass_topic(s), Topics(s.topic_prefix).audit):
        everywhere += [repr(value) for _, value, _ in read_topic(s, topic)]
    assert not any("credible threat" in text for text in everywhere)
