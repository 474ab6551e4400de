"""The SDK on its own: its wheel, built from this checkout and installed into a fresh venv
outside it, publishes to the broker with no admin rights, and the hub reads the event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from hub.config import PROJECT_ROOT, Settings
from sdk.build import build
from tests.integration.connector_helpers import GOOD_NHS, onboard, published_events

PARTNER = "council-housing"

# Run by the venv's interpreter, in a folder outside the checkout: the SDK as a partner
# uses it (README's SDK section), then a partner the hub has not onboarded.
_PARTNER_SCRIPT = f"""
import json
from datetime import UTC, datetime, timedelta

import hub
from connectors import EventDraft, Publisher, UnknownPartner
from hub.models import BasisKind, HousingEvent, HousingKind, LawfulBasis

draft = EventDraft(
    source_ref="HSG-7",
    identifiers={{"nhs": "{GOOD_NHS}"}},
    basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id="c-1", purpose="early-help"),
    payload=HousingEvent(kind=HousingKind.ARREARS),
    occurred_at=datetime.now(UTC) - timedelta(days=1),
)
with Publisher("{PARTNER}", "northgate") as publisher:
    receipt = publisher.publish(draft)
try:
    with Publisher("food-bank", "shelf") as stranger:
        stranger.publish(draft)
    refused = ""
except UnknownPartner as exc:
    refused = str(exc)
print(json.dumps({{"event_id": receipt.event_id, "refused": refused, "hub": hub.__file__}}))
"""


def _run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600, **options
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command[:3]}: {done.stderr[-2000:]}"
    return done  # type: ignore[no-any-return]


def sdk_venv(tmp_path: Path) -> Path:
    """A fresh venv, outside the checkout, with only the SDK's wheel (built here) in it."""
    wheel = build(tmp_path / "dist")
    shipped = zipfile.ZipFile(wheel).namelist()
    assert "hub/schemas/PartnerEvent.avsc" in shipped
    assert not [name for name in shipped if name.startswith("hub/_") and "__init__" not in name]
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    installed = _run(venv / "bin" / "python", "-m", "pip", "list", "--format=json").stdout
    names = {package["name"].lower() for package in json.loads(installed)}
    assert "placehub-connectors" in names
    assert not names & {"faust-streaming", "aiokafka", "aiohttp", "placehub"}
    return venv


def run_as_partner(
    venv: Path, script: str, folder: Path, settings: dict[str, str]
) -> dict[str, Any]:
    """``script``'s JSON output, run by ``venv``'s interpreter in ``folder`` (outside the
    checkout) with no ``PLACEHUB_*`` setting but ``settings``."""
    folder.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLACEHUB_")}
    env.pop("PYTHONPATH", None)
    env |= settings
    done = _run(venv / "bin" / "python", "-c", script, cwd=folder, env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_sdk_wheel_publishes_from_a_fresh_venv_and_the_hub_reads_it(
    hub_settings: Settings, tmp_path: Path
) -> None:
    venv = sdk_venv(tmp_path)
    onboard(hub_settings, PARTNER)  # the hub's side: the topic made, the subjects registered

    result = run_as_partner(
        venv,
        _PARTNER_SCRIPT,
        tmp_path / "partner",
        {
            "PLACEHUB_BOOTSTRAP_SERVERS": hub_settings.bootstrap_servers,
            "PLACEHUB_TOPIC_PREFIX": hub_settings.topic_prefix,
            "PLACEHUB_ALLOW_TEST_KEY": "1",
        },
    )

    assert Path(result["hub"]).is_relative_to(venv)  # not the checkout's
    assert not Path(result["hub"]).is_relative_to(PROJECT_ROOT)
    [event] = published_events(hub_settings, PARTNER)  # decoded through the hub's registry
    assert (event.event_id, event.source_ref, event.partner_id) == (
        result["event_id"], "HSG-7", PARTNER,
    )  # fmt: skip
    assert GOOD_NHS.replace(" ", "") not in event.model_dump_json()
    assert result["refused"] == (
        "partner 'food-bank' is not onboarded: its topic "
        f"{hub_settings.topic_prefix}partner.food-bank.events does not exist; ask the hub's "
        "admin to onboard it (the operations guide, 'Onboarding a partner')"
    )
