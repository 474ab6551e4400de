"""One-step onboarding against the real broker and two running workers (issue 14): a
partner added with ``placehub partners add`` publishes through the SDK and HTTP ingest
into the view without a worker restarted, and ``partners remove`` revokes its token."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from connectors import ConsentDraft, EventDraft, Publisher, token
from hub.config import PROJECT_ROOT, Settings
from hub.models import BasisKind, CommunityEvent, CommunityKind, LawfulBasis
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, free_port, worker_env
from tests.integration.test_walking_skeleton import NHS, consent, housing_event, person_path

pytestmark = pytest.mark.integration

PARTNER = "eastside-food-bank"
WHEN = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def placehub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``placehub`` as an operator runs it, with the hub's settings in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=worker_env(settings),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def food_bank_consent(consent_id: str = "fb-1") -> ConsentDraft:
    return ConsentDraft(
        consent_id=consent_id,
        identifiers={"nhs": NHS},
        purposes=["early-help"],
        sharing_partners=[PARTNER, "council-housing"],
    )


def food_bank_visit(consent_id: str = "fb-1") -> EventDraft:
    return EventDraft(
        source_ref="visit-0001",
        identifiers={"nhs": NHS},
        basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help"),
        payload=CommunityEvent(kind=CommunityKind.FOOD_BANK),
        occurred_at=WHEN,
    )


def status(worker: WorkerProcess, ingest_token: str) -> requests.Response:
    return worker.get(f"/v1/partners/{PARTNER}/status", token=ingest_token)


def test_a_partner_added_to_running_workers_publishes_into_the_view_and_is_revoked(
    make_worker: WorkerFactory, hub_settings: Settings, tmp_path: Path
) -> None:
    first, second = make_worker(), make_worker(web_port=free_port())
    handover_dir = tmp_path / "handover"

    added = placehub(
        hub_settings,
        *("partners", "add", PARTNER, "--name", "Eastside Food Bank", "--sector", "charity"),
        *("--secrets-dir", str(handover_dir), "--wait", "120", "--json"),
    )

    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout)
    assert report["workers_joined"] is True
    token_file = handover_dir / "ingest.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    ingest_token = token_file.read_text().strip()
    assert ingest_token not in added.stdout + added.stderr
    assert report["kafka_user"] is None  # the test broker is not secured

    # Both workers answer for it: its status needs each one's share of the books.
    for worker in (first, second):
        assert status(worker, ingest_token).status_code == 200

    with Publisher(PARTNER, "foodbank-crm", hub_settings) as publisher:
        publisher.publish_consent(food_bank_consent())
        publisher.publish(food_bank_visit())
    # Housing is involved with the person too, so its practitioner sees the joined-up view.
    with Publisher("council-housing", "northgate", hub_settings) as housing:
        housing.publish_consent(consent())
        housing.publish(housing_event())
    view = second.wait_for(
        person_path(second),
        lambda r: r.ok and PARTNER in r.json()["partners"],
        timeout_s=120,
        token="demo-practitioner-housing",
        expecting="the new partner's event in the person's view",
    )
    assert sorted(view.json()["partners"]) == ["council-housing", PARTNER]
    assert view.json()["event_count"] == 2

    wire = food_bank_visit().model_dump(mode="json")
    event = {
        "event_id": "0b5d7a8e-6c1f-4d2e-9a3b-5c4d3e2f1a0b",
        "source_system": "foodbank-crm",
        "source_ref": "visit-0002",
        "occurred_at": wire["occurred_at"].replace("+00:00", "Z"),
        "subject": {"tokens": [token("nhs", NHS, hub_settings.place_key_bytes())]},
        "basis": {"kind": "CONSENT", "consent_id": "fb-1", "purpose": "early-help"},
        "payload": {"family": "community", "kind": "FOOD_BANK"},
    }
    posted = requests.post(
        f"{first.url}/v1/events",
        json=event,
        headers={"Authorization": f"Bearer {ingest_token}"},
        timeout=30,
    )
    assert posted.status_code == 202, posted.text
    books = first.wait_for(
        f"/v1/partners/{PARTNER}/status",
        lambda r: r.ok and r.json()["in_view"] == 2,
        timeout_s=60,
        token=ingest_token,
        expecting="both events in the books",
    ).json()
    assert books["received"] == 2 and books["balanced"] is True

    again = placehub(hub_settings, "partners", "add", PARTNER, "--name", "X", "--sector", "charity")
    assert again.returncode == 2
    assert "registered already" in again.stderr

    removed = placehub(hub_settings, "partners", "remove", PARTNER)
    assert removed.returncode == 0, removed.stderr
    for worker in (first, second):
        worker.wait_for(
            f"/v1/partners/{PARTNER}/status",
            lambda r: r.status_code == 401,
            timeout_s=30,
            token=ingest_token,
            expecting="the removed partner's token refused",
        )
    listed = placehub(hub_settings, "partners", "list", "--json")
    assert json.loads(listed.stdout) == [
        {"id": PARTNER, "name": "Eastside Food Bank", "removed": True}
    ]


def test_partners_add_refuses_a_partner_of_the_partners_file_before_making_anything(
    hub_settings: Settings,
) -> None:
    refused = placehub(
        hub_settings, "partners", "add", "council-housing", "--name", "X", "--sector", "housing"
    )
    assert refused.returncode == 2
    assert "council-housing is in the partners file already" in refused.stderr
