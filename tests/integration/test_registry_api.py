"""The hub's Schema Registry REST API, over HTTP against a real worker and the real broker."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from hub.break_glass import break_glass_topic
from hub.catalogue import event_types
from hub.partners import load_partners
from hub.registry import SchemaRegistry
from hub.registry_api import CONTENT_TYPE
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess


def schema(*fields: dict[str, Any], name: str = "Reading") -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "org.test", "fields": list(fields)}
    )


V1 = schema({"name": "a", "type": "string"})
V2 = schema({"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0})
BREAKS = schema({"name": "a", "type": "string"}, {"name": "c", "type": "int"})


class Client:
    """Plain HTTP calls the way Confluent's clients make them (as the admin unless told)."""

    def __init__(self, worker: WorkerProcess, authorization: str | None = "Bearer demo-admin"):
        self.url = worker.url
        self.authorization = authorization

    def call(
        self, method: str, path: str, body: dict[str, Any] | bytes | None = None
    ) -> requests.Response:
        headers = {"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE}
        if self.authorization:
            headers["Authorization"] = self.authorization
        data = body if isinstance(body, bytes) else json.dumps(body) if body is not None else None
        return requests.request(method, f"{self.url}{path}", data=data, headers=headers, timeout=30)

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith(CONTENT_TYPE)
        return response.json()

    def refused(
        self,
        method: str,
        path: str,
        status: int,
        code: int,
        body: dict[str, Any] | bytes | None = None,
    ) -> str:
        response = self.call(method, path, body)
        assert (response.status_code, response.json()["error_code"]) == (status, code), (
            response.text
        )
        message: str = response.json()["message"]
        return message


def test_register_lookup_versions_and_ids(worker: WorkerProcess) -> None:
    api = Client(worker)
    subject = "readings-value"
    first = api.ok("POST", f"/subjects/{subject}/versions", {"schema": V1})["id"]
    assert api.ok("POST", f"/subjects/{subject}/versions", {"schema": V1}) == {"id": first}
    second = api.ok("POST", f"/subjects/{subject}/versions", {"schema": V2, "schemaType": "AVRO"})
    assert second["id"] != first
    # A worker registers what it encodes at start: dead letters, audit records, break-glass
    # reads, alerts, alert feedback, alert statuses, pattern cells and collective responses,
    # and the events of every partner (for HTTP ingest); and, since the SDK registers
    # nothing, what partners write: consents and every partner's identity links.
    topics = Topics(worker.settings.topic_prefix)
    ids = [p.id for p in load_partners(worker.settings.partners_file)]
    partners = [topics.partner(p) for p in ids] + [topics.partner_links(p) for p in ids]
    break_glass = break_glass_topic(worker.settings)
    assert api.ok("GET", "/subjects") == sorted(
        [subject, f"{topics.audit}-value", f"{topics.dlq}-value", f"{break_glass}-value"]
        + [f"{topics.alerts}-value", f"{topics.alert_feedback}-value"]
        + [f"{worker.settings.topic_prefix}hub.alert-status-value", f"{topics.patterns}-value"]
        + [f"{topics.responses}-value", f"{topics.consent}-value"]
        + [f"{topic}-value" for topic in partners]
    )
    assert api.ok("GET", f"/subjects/{subject}/versions") == [1, 2]
    latest = api.ok("GET", f"/subjects/{subject}/versions/latest")
    assert (latest["version"], latest["id"], json.loads(latest["schema"])) == (
        2,
        second["id"],
        json.loads(V2),
    )
    assert api.ok("GET", f"/subjects/{subject}/versions/1/schema") == json.loads(V1)
    found = api.ok("POST", f"/subjects/{subject}", {"schema": V1})
    assert (found["subject"], found["version"], found["id"]) == (subject, 1, first)
    assert json.loads(api.ok("GET", f"/schemas/ids/{first}")["schema"]) == json.loads(V1)
    assert api.ok("GET", f"/schemas/ids/{first}/versions") == [{"subject": subject, "version": 1}]
    assert api.ok("GET", f"/schemas/ids/{first}/subjects") == [subject]

    api.refused("GET", "/subjects/nobody-value/versions", 404, 40401)
    api.refused("GET", f"/subjects/{subject}/versions/9", 404, 40402)
    api.refused("GET", f"/subjects/{subject}/versions/0", 422, 42202)
    api.refused("GET", "/schemas/ids/7", 404, 40403)
    api.refused("POST", f"/subjects/{subject}", 404, 40403, {"schema": BREAKS})
    api.refused("POST", f"/subjects/{subject}/versions", 422, 42201, {"schema": "{not json"})
    message = api.refused(
        "POST", f"/subjects/{subject}/versions", 422, 42201, {"schema": schema({"name": "a"})}
    )
    assert message.startswith("Invalid schema")

    # Several processes agree: a fresh store reading the topic sees the same versions and ids.
    other = SchemaRegistry(worker.settings)
    try:
        assert [(v.version, v.schema_id) for v in other.versions(subject)] == [
            (1, first),
            (2, second["id"]),
        ]
    finally:
        other.close()


def test_incompatible_schema_is_409_with_the_reason_and_config_changes_the_rule(
    worker: WorkerProcess,
) -> None:
    api = Client(worker)
    subject = "readings-value"
    api.ok("POST", f"/subjects/{subject}/versions", {"schema": V1})
    message = api.refused("POST", f"/subjects/{subject}/versions", 409, 409, {"schema": BREAKS})
    assert 'incompatible with an earlier schema for subject "readings-value"' in message
    assert "c: field is missing in the writer's schema and has no default" in message

    check = f"/compatibility/subjects/{subject}/versions/latest?verbose=true"
    verdict = api.ok("POST", check, {"schema": BREAKS})
    assert verdict["is_compatible"] is False and "c: field is missing" in verdict["messages"][0]
    assert api.ok("POST", f"/compatibility/subjects/{subject}/versions", {"schema": V2}) == {
        "is_compatible": True
    }

    assert api.ok("GET", "/config") == {"compatibilityLevel": "BACKWARD"}
    api.refused("GET", f"/config/{subject}", 404, 40408)
    assert api.ok("PUT", f"/config/{subject}", {"compatibility": "none"}) == {
        "compatibility": "NONE"
    }
    assert api.ok("GET", f"/config/{subject}") == {"compatibilityLevel": "NONE"}
    assert api.ok("POST", f"/subjects/{subject}/versions", {"schema": BREAKS})["id"] > 0
    assert api.ok("DELETE", f"/config/{subject}") == {"compatibilityLevel": "NONE"}
    assert api.ok("GET", f"/config/{subject}?defaultToGlobal=true") == {
        "compatibilityLevel": "BACKWARD"
    }
    assert api.ok("PUT", "/config", {"compatibility": "FULL_TRANSITIVE"}) == {
        "compatibility": "FULL_TRANSITIVE"
    }
    api.refused("PUT", "/config", 422, 42203, {"compatibility": "SIDEWAYS"})
    assert api.ok("GET", "/config") == {"compatibilityLevel": "FULL_TRANSITIVE"}


def test_soft_and_permanent_delete(worker: WorkerProcess) -> None:
    api = Client(worker)
    subject = "readings-value"
    api.ok("POST", f"/subjects/{subject}/versions", {"schema": V1})
    second = api.ok("POST", f"/subjects/{subject}/versions", {"schema": V2})["id"]
    assert api.ok("DELETE", f"/subjects/{subject}/versions/1") == 1
    api.refused("DELETE", f"/subjects/{subject}/versions/1", 404, 40406)
    assert api.ok("GET", f"/subjects/{subject}/versions") == [2]
    assert api.ok("GET", f"/subjects/{subject}/versions?deleted=true") == [1, 2]
    api.refused("DELETE", f"/subjects/{subject}?permanent=true", 404, 40405)
    assert api.ok("DELETE", f"/subjects/{subject}") == [2]
    assert subject not in api.ok("GET", "/subjects")
    assert subject in api.ok("GET", "/subjects?deleted=true")
    api.refused("GET", f"/subjects/{subject}/versions", 404, 40401)
    # A soft-deleted schema still decodes old records, and can be registered again.
    assert json.loads(api.ok("GET", f"/schemas/ids/{second}")["schema"]) == json.loads(V2)
    again = api.ok("POST", f"/subjects/{subject}/versions", {"schema": V2})
    assert again == {"id": second}
    assert api.ok("GET", f"/subjects/{subject}/versions") == [3]
    assert api.ok("DELETE", f"/subjects/{subject}") == [3]
    assert api.ok("DELETE", f"/subjects/{subject}?permanent=true") == [1, 2, 3]
    assert subject not in api.ok("GET", "/subjects?deleted=true")


def test_registrations_survive_a_worker_restart(worker: WorkerProcess) -> None:
    api = Client(worker)
    first = api.ok("POST", "/subjects/readings-value/versions", {"schema": V1})["id"]
    api.ok("PUT", "/config/readings-value", {"compatibility": "FORWARD"})
    worker.stop()
    worker.start()
    assert json.loads(api.ok("GET", f"/schemas/ids/{first}")["schema"]) == json.loads(V1)
    assert api.ok("GET", "/subjects/readings-value/versions") == [1]
    assert api.ok("GET", "/config/readings-value") == {"compatibilityLevel": "FORWARD"}


def test_the_worker_serves_the_schema_catalogue(worker: WorkerProcess) -> None:
    response = requests.get(f"{worker.url}/catalogue", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    for event_type, _, _ in event_types():
        assert f"<code>{event_type}</code>" in response.text
    for name in ("PartnerEvent", "ConsentRecord", "Alert", "AlertFeedback", "PatternCell"):
        assert f"<h2 id='{name.lower()}'>{name}</h2>" in response.text


def basic(user_id: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user_id}:{token}".encode()).decode()


def test_reads_need_a_partner_or_admin_and_writes_an_admin(worker: WorkerProcess) -> None:
    """Anyone could register, change the config and permanently delete subjects."""
    admin = Client(worker)
    subject = "readings-value"
    first = admin.ok("POST", f"/subjects/{subject}/versions", {"schema": V1})["id"]
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"/subjects/{subject}/versions", {"schema": V2}),
        ("PUT", "/config", {"compatibility": "NONE"}),
        ("PUT", f"/config/{subject}", {"compatibility": "NONE"}),
        ("DELETE", f"/config/{subject}", None),
        ("DELETE", f"/subjects/{subject}/versions/1", None),
        ("DELETE", f"/subjects/{subject}", None),
        ("DELETE", f"/subjects/{subject}?permanent=true", None),
    ]
    reads: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/subjects", None),
        ("GET", f"/subjects/{subject}/versions/latest", None),
        ("GET", f"/schemas/ids/{first}", None),
        ("GET", "/config", None),
        ("POST", f"/subjects/{subject}", {"schema": V1}),  # a lookup
        ("POST", f"/compatibility/subjects/{subject}/versions/latest", {"schema": V2}),
    ]
    nobody, practitioner = Client(worker, None), Client(worker, "Bearer demo-practitioner-housing")
    partner = Client(worker, basic("city-health-feed", "demo-partner-health"))
    for method, path, body in writes + reads:
        assert nobody.refused(method, path, 401, 40101, body), path
        assert practitioner.refused(method, path, 403, 40301, body), path
    for method, path, body in writes:
        partner.refused(method, path, 403, 40301, body)
    for method, path, body in reads:
        partner.ok(method, path, body)
    wrong_id = Client(worker, basic("admin", "demo-partner-health"))  # not that token's user
    wrong_id.refused("GET", "/subjects", 401, 40101)
    assert admin.ok("GET", f"/subjects/{subject}/versions") == [1]  # nothing changed


def test_oversized_and_hostile_bodies_are_refused_not_500(worker: WorkerProcess) -> None:
    api = Client(worker)
    subject = "readings-value"
    five_mb = {"schema": schema({"name": "a", "type": "string", "doc": "x" * 5_000_000})}
    api.refused("POST", f"/subjects/{subject}/versions", 413, 413, five_mb)
    deep = {"schema": "[" * 10_000 + "]" * 10_000}
    message = api.refused("POST", f"/subjects/{subject}/versions", 422, 42201, deep)
    assert "nested deeper than 64 levels" in message
    big = b'{"schema": ' + b"9" * 5_000 + b"}"
    api.refused("POST", f"/subjects/{subject}/versions", 400, 400, big)
    utf16 = json.dumps({"schema": V1}).encode("utf-16")
    api.refused("POST", f"/subjects/{subject}/versions", 415, 415, utf16)
    api.refused("GET", f"/subjects/{subject}/versions", 404, 40401)  # nothing registered
    assert "Traceback" not in worker.log_path.read_text()
