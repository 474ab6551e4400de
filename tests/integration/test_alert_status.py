"""Inbox states on the real broker: a practitioner acknowledges and closes an alert for
their own organisation only, the inbox filters by status, feedback acknowledges, and the
states live in Kafka (a restarted worker still has them)."""

from __future__ import annotations

from typing import Any

import requests

from hub.models import AlertInboxStatus, AlertStatus
from hub.registry import SchemaRegistry
from hub.serde import Serde
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_alerts import (
    HOUSING_PRACTITIONER,
    SCHOOL_PRACTITIONER,
    inbox,
    publish_three_domains,
)


def post(worker: WorkerProcess, token: str | None, path: str, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{worker.url}{path}", json=body, headers=headers, timeout=10)


def statuses(worker: WorkerProcess, token: str, query: str = "") -> dict[str, str]:
    reply = worker.get(f"/v1/alerts{query}", token=token)
    assert reply.status_code == 200, reply.text
    return {a["alert_id"]: a["status"] for a in reply.json()["alerts"]}


def test_each_organisation_moves_its_own_inbox_and_kafka_keeps_it(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    publish_three_domains(worker.settings)
    worker.wait_for(
        "/v1/alerts",
        lambda r: r.status_code == 200 and bool(r.json()["alerts"]),
        token=HOUSING_PRACTITIONER,
        expecting="housing's alert",
    )
    [alert] = inbox(worker, HOUSING_PRACTITIONER)
    a = alert["alert_id"]
    assert alert["status"] == "open"
    path = f"/v1/alerts/{a}/status"

    assert post(worker, HOUSING_PRACTITIONER, path, {"status": "acknowledged"}).json() == {
        "alert_id": a,
        "status": "acknowledged",
    }
    assert statuses(worker, HOUSING_PRACTITIONER) == {a: "acknowledged"}
    assert statuses(worker, HOUSING_PRACTITIONER, "?status=open") == {}
    assert post(worker, HOUSING_PRACTITIONER, path, {"status": "closed"}).status_code == 200
    assert statuses(worker, HOUSING_PRACTITIONER) == {}  # open and acknowledged by default
    assert statuses(worker, HOUSING_PRACTITIONER, "?status=closed") == {a: "closed"}
    assert statuses(worker, HOUSING_PRACTITIONER, "?status=open,closed") == {a: "closed"}
    # The school was told of the same alert: its inbox is its own.
    assert statuses(worker, SCHOOL_PRACTITIONER) == {a: "open"}
    # Feedback acknowledges it.
    feedback = post(worker, SCHOOL_PRACTITIONER, f"/v1/alerts/{a}/feedback", {"outcome": "USEFUL"})
    assert feedback.status_code == 201
    assert statuses(worker, SCHOOL_PRACTITIONER) == {a: "acknowledged"}

    # Refusals: not told, not a practitioner, no token, a bad body or query; no value echoed.
    unknown = post(worker, HOUSING_PRACTITIONER, "/v1/alerts/nope/status", {"status": "closed"})
    assert unknown.status_code == 404
    assert post(worker, "demo-steward", path, {"status": "closed"}).status_code == 403
    assert post(worker, None, path, {"status": "closed"}).status_code == 401
    bad = post(worker, HOUSING_PRACTITIONER, path, {"status": "JANE SMITH"})
    assert bad.status_code == 422 and "JANE" not in bad.text
    assert [e["pointer"] for e in bad.json()["errors"]] == ["/status"]
    query = worker.get("/v1/alerts?status=JANE", token=HOUSING_PRACTITIONER)
    assert query.status_code == 422 and "JANE" not in query.text
    assert query.json()["errors"][0]["pointer"] == "status"

    # In Kafka, keyed by alert and organisation; a restarted worker reads it back.
    s = worker.settings
    serde = Serde(SchemaRegistry(s))
    records = {
        key: serde.decode(value, AlertStatus)
        for key, value, _ in read_topic(s, f"{s.topic_prefix}hub.alert-status")
        if key is not None and value is not None
    }
    assert records[f"{a}/council-housing".encode()].status is AlertInboxStatus.CLOSED
    worker.stop()
    worker.start()
    assert statuses(worker, HOUSING_PRACTITIONER, "?status=closed") == {a: "closed"}
    assert statuses(worker, SCHOOL_PRACTITIONER) == {a: "acknowledged"}
