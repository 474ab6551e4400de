"""Alerts on the real broker: a shipped rule fires on a crafted timeline and not on a near
miss, reaches the inbox of the partners it tells (and no other), at the level the read
rules give them, and is erased when its basis is withdrawn."""

from __future__ import annotations

from typing import Any

import requests

from connectors import ConsentDraft, Publisher
from hub.config import Settings
from hub.models import Alert, ConsentStatus
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_stream_core import (
    HEALTH,
    HOUSING,
    NHS,
    SCHOOL,
    draft,
    tok,
    wait_until,
)

OTHER_NHS, NEAR_NHS = "401 023 2137", "943 476 5870"
HOUSING_PRACTITIONER, SCHOOL_PRACTITIONER = "demo-practitioner-housing", "demo-practitioner-school"


def alerts_on_topic(worker: WorkerProcess) -> dict[bytes, Alert | None]:
    """hub.alerts as compaction will leave it: the latest value per alert id."""
    s = worker.settings
    serde = Serde(SchemaRegistry(s))
    latest: dict[bytes, Alert | None] = {}
    for key, value, _ in read_topic(s, Topics(s.topic_prefix).alerts):
        assert key is not None
        latest[key] = serde.decode(value, Alert) if value is not None else None
    return latest


def inbox(worker: WorkerProcess, token: str) -> list[dict[str, Any]]:
    reply = worker.get("/v1/alerts", token=token)
    assert reply.status_code == 200, reply.text
    alerts: list[dict[str, Any]] = reply.json()["alerts"]
    return alerts


def publish_three_domains(settings: Settings, nhs: str = NHS) -> str:
    """Housing, school (northfield) and health events for ``nhs`` within 90 days under the
    test agreement: the multi-domain rule fires for those three. The person's id."""
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish(draft({"nhs": nhs}, HOUSING, agreement_id=TEST_AGREEMENT_ID))
    with Publisher("northfield-school", "sims", settings) as school:
        school.publish(draft({"nhs": nhs}, SCHOOL, agreement_id=TEST_AGREEMENT_ID, minutes=1))
    with Publisher("city-health", "emis", settings) as health:
        health.publish(draft({"nhs": nhs}, HEALTH, agreement_id=TEST_AGREEMENT_ID, minutes=2))
    return person_id_for(tok(settings, "nhs", nhs))


def consent_b(nhs: str, withdrawn: bool = False) -> ConsentDraft:
    """Housing's consent ``c-b`` for ``nhs``: shared with housing, health and southside (not
    northfield), or withdrawn."""
    return ConsentDraft(
        consent_id="c-b",
        identifiers={"nhs": nhs},
        purposes=["early-help"],
        sharing_partners=(
            ["council-housing"]
            if withdrawn
            else ["council-housing", "city-health", "southside-primary"]
        ),
        status=ConsentStatus.WITHDRAWN if withdrawn else ConsentStatus.GIVEN,
    )


def publish_under_consent(settings: Settings, nhs: str = OTHER_NHS) -> str:
    """Person B: housing, school (southside, which housing's agreement does not name) and
    health events under consent ``c-b``: the multi-domain rule fires for housing, health
    and southside, not northfield. The person's id."""
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent_b(nhs))
        housing.publish(draft({"nhs": nhs}, HOUSING, consent_id="c-b"))
    with Publisher("southside-primary", "sims", settings) as primary:
        primary.publish(draft({"nhs": nhs}, SCHOOL, consent_id="c-b", minutes=1))
    with Publisher("city-health", "emis", settings) as health:
        health.publish(draft({"nhs": nhs}, HEALTH, consent_id="c-b", minutes=2))
    return person_id_for(tok(settings, "nhs", nhs))


def withdraw_consent(settings: Settings, nhs: str = OTHER_NHS) -> None:
    """Housing withdraws consent ``c-b`` for ``nhs``."""
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent_b(nhs, withdrawn=True))


def test_a_rule_fires_for_the_partners_involved_and_is_erased_with_its_basis(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    s = worker.settings
    # A: housing, northfield and health under the test agreement; B: the same three
    # domains under B's consent, southside being B's school; the near miss: two domains.
    a, b = publish_three_domains(s), publish_under_consent(s)
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish(draft({"nhs": NEAR_NHS}, HOUSING, agreement_id=TEST_AGREEMENT_ID))
    with Publisher("city-health", "emis", s) as health:
        health.publish(draft({"nhs": NEAR_NHS}, HEALTH, agreement_id=TEST_AGREEMENT_ID, minutes=2))

    def fired() -> dict[str, Alert]:
        return {x.person_id: x for x in alerts_on_topic(worker).values() if x is not None}

    wait_until(lambda: {a, b} <= set(fired()), describe=lambda: sorted(fired()))
    alerts = fired()
    assert set(alerts) == {a, b}  # not the near miss
    assert alerts[a].rule_code == "multi-domain-needs"
    assert alerts[a].recipients == ["city-health", "council-housing", "northfield-school"]
    assert alerts[a].explanation == [
        "education.suspension",
        "health.ae_attendance",
        "housing.arrears",
    ]

    housing_sees = {x["person_id"]: x for x in inbox(worker, HOUSING_PRACTITIONER)}
    assert set(housing_sees) == {a, b}
    seen = housing_sees[a]
    assert (seen["rule"], seen["severity"], seen["events_withheld"]) == (
        "multi-domain-needs",
        "HIGH",
        0,
    )
    assert seen["source_refs"] == ["REF-1"]  # housing's own record of the person
    assert {e["partner_id"] for e in seen["events"]} == {
        "council-housing",
        "northfield-school",
        "city-health",
    }
    # The school is told of A, not of B, whose school is another.
    assert [x["person_id"] for x in inbox(worker, SCHOOL_PRACTITIONER)] == [a]
    assert worker.get("/v1/alerts", token="demo-steward").status_code == 403
    assert worker.get("/v1/alerts", token=None).status_code == 401

    # Feedback: only on an alert one's organisation was told of, a known verdict.
    def feedback(token: str, alert_id: str, body: dict[str, Any]) -> requests.Response:
        url = f"{worker.url}/v1/alerts/{alert_id}/feedback"
        return requests.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    useful = {"outcome": "USEFUL", "reason_code": "new-to-us"}
    assert feedback(HOUSING_PRACTITIONER, seen["alert_id"], useful).status_code == 201
    assert feedback(SCHOOL_PRACTITIONER, alerts[b].alert_id, useful).status_code == 404
    bad = feedback(SCHOOL_PRACTITIONER, seen["alert_id"], {"outcome": "JANE SMITH"})
    assert bad.status_code == 422 and "JANE" not in bad.text
    known = feedback(SCHOOL_PRACTITIONER, seen["alert_id"], {"outcome": "ALREADY_KNOWN"})
    assert known.status_code == 201
    rules = worker.get("/v1/alerts/usefulness", token="demo-steward").json()["rules"]
    by_partner = rules["multi-domain-needs"]
    assert by_partner["council-housing"]["share_useful"] == 1.0
    assert by_partner["northfield-school"]["ALREADY_KNOWN"] == 1
    assert worker.get("/v1/alerts/usefulness", token=HOUSING_PRACTITIONER).status_code == 403

    withdraw_consent(s)
    wait_until(lambda: b not in fired())
    assert alerts_on_topic(worker)[alerts[b].alert_id.encode()] is None  # a tombstone
    assert [x["person_id"] for x in inbox(worker, HOUSING_PRACTITIONER)] == [a]
