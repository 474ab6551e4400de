"""The learning cycle on the real broker: a small place's weekly patterns are published, a
steward records a response to one of them through the API, and the response's evaluation
shows exactly the published cells of that pattern (its area, the comparison area, the whole
place); the response is on hub.responses, audited, amended with its history kept, and read
back the same after the worker restarts (it is on the topic, not in a worker's memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from hub.models import AuditRecord, CollectiveResponse
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, read_topic
from tests.integration.test_steward_page import AREA_A, AREA_B, publish_small_place

STEWARD = "demo-steward"
WAIT_S = 90


def post(worker: WorkerProcess, path: str, body: Any, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{worker.url}{path}", json=body, headers=headers, timeout=30)


def housing_cells(reply: requests.Response) -> dict[str | None, Any]:
    """The weekly housing cells by area (None: the whole place), as the API published them."""
    cells = reply.json()["cells"] if reply.ok else []
    return {
        c["area_code"]: c
        for c in cells
        if c["measure"] == "domain" and c["combination_code"] == "housing"
    }


def test_a_response_is_recorded_evaluated_against_published_cells_and_survives_a_restart(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    publish_small_place(worker)  # a fortnight ago: 12 with housing needs in A, 6 in B
    path = "/v1/patterns?window=week&measure=domain&domain=housing"
    reply = worker.wait_for(
        path,
        # Until every delta has landed: a cell is published (suppressed) before its count
        # reaches its final value, and CI once read area A at that moment.
        lambda r: (
            {k: c["count"] for k, c in housing_cells(r).items()}
            == {AREA_A: 10, AREA_B: 5, None: 20}
        ),
        WAIT_S,
        STEWARD,
        "the weekly housing cells of the place and both areas, all deltas counted",
    )
    published = housing_cells(reply)
    assert published[AREA_A]["count"] == 10 and published[AREA_B]["count"] == 5  # 12, 6
    assert published[None]["count"] == 20  # 18 people: its own cell, not 10 + 5

    first_day = (datetime.now(UTC) - timedelta(days=7)).date()
    body = {
        "title": "Housing advice at the school gate",
        "description": "Weekly drop-in sessions with the council's housing officers.",
        "kind": "OUTREACH",
        "area_codes": [AREA_A],
        "from_date": first_day.isoformat(),
        "granularity": "week",
        "measure": "domain",
        "combination_code": "housing",
    }
    assert post(worker, "/v1/responses", body, None).status_code == 401
    assert post(worker, "/v1/responses", body, "demo-practitioner-housing").status_code == 403
    refused = post(worker, "/v1/responses", {**body, "title": "x@y.org here"}, STEWARD)
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/title"]
    made = post(worker, "/v1/responses", body, STEWARD)
    assert made.status_code == 201, made.text
    response_id = made.json()["response_id"]

    listed = worker.get("/v1/responses", token=STEWARD).json()["responses"]
    assert [(r["response_id"], r["recorded_by"], r["status"]) for r in listed] == [
        (response_id, "jo.steward", "ACTIVE")
    ]
    assert worker.get("/v1/responses", token="demo-practitioner-housing").status_code == 403
    assert worker.get("/v1/responses/no-such-id", token=STEWARD).status_code == 404

    def evaluated() -> dict[str, Any]:
        reply = worker.get(f"/v1/responses/{response_id}", token=STEWARD)
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found

    found = evaluated()
    week = published[None]["window_start"][:10]
    assert found["windows"] == [week] and found["phases"] == ["before"]
    assert found["areas"] == [{"area_code": AREA_A, "values": [10]}]
    assert found["comparison"] == [{"area_code": AREA_B, "values": [5]}]
    assert found["place"] == {"area_code": None, "values": [20]}
    assert found["disclosure"]["threshold"] == 5 and found["comparison_rule"]
    assert found["feedback"]["which"] and isinstance(found["feedback"]["rules"], list)

    # On the topic, keyed by its id, and the acts audited.
    settings = worker.settings
    topics, serde = Topics(settings.topic_prefix), Serde(SchemaRegistry(settings))
    records = [(k, v) for k, v, _ in read_topic(settings, topics.responses) if v]
    assert [(k, serde.decode(v, CollectiveResponse).title) for k, v in records] == [
        (response_id.encode(), body["title"])
    ]
    audited = [serde.decode(v, AuditRecord) for _, v, _ in read_topic(settings, topics.audit) if v]
    responses = [a for a in audited if a.action.startswith("response")]
    assert [(a.action, a.actor, a.outcome, a.person_id) for a in responses] == [
        ("response.record", "alex.housing", "denied", None),  # the practitioner's try
        ("response.record", "jo.steward", "ok", None),
    ]

    # Ended a day ago: the next value under the key, with the change kept.
    until = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    ended = post(worker, f"/v1/responses/{response_id}/status",
                 {"status": "ENDED", "until_date": until}, STEWARD)  # fmt: skip
    assert ended.status_code == 200, ended.text
    assert [c["status"] for c in ended.json()["changes"]] == ["ENDED"]
    backwards = post(worker, f"/v1/responses/{response_id}/status",
                     {"status": "ENDED", "until_date": "2000-01-01"}, STEWARD)  # fmt: skip
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["pointer"] == "/until_date"
    before_restart = evaluated()
    assert before_restart["response"]["status"] == "ENDED"
    assert before_restart["response"]["until_date"] == until

    worker.stop()
    worker.start()
    assert evaluated() == before_restart
