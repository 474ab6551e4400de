"""The partner example script is also a test: it runs as written against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hub.config import PROJECT_ROOT, Settings
from tests.integration.connector_helpers import onboard, published_events, raw_topic_bytes


@pytest.fixture(autouse=True)
def _onboarded(hub_settings: Settings) -> None:
    onboard(hub_settings, "council-housing")  # no worker runs here to create the topic


def _run_example(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLACEHUB_")},
        **env,
        "PLACEHUB_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PLACEHUB_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "examples" / "publish_from_partner.py")],
        env=environment, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
    )  # fmt: skip


def test_example_script_publishes_and_reports_each_failure(hub_settings: Settings) -> None:
    done = _run_example(hub_settings, PLACEHUB_ALLOW_TEST_KEY="1")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "case-1043: not sent, no consent or agreement recorded"
    assert lines[2] == (
        "case-1044: not sent, /identifiers/nhs: the NHS number's check digit is wrong"
    )
    assert lines[-1] == "published 1, rejected 2"
    events = published_events(hub_settings, "council-housing")
    assert [e.source_ref for e in events] == ["case-1042"]  # its own reference, not the council's
    assert lines[0].startswith(f"case-1042: sent as {events[0].event_id}")
    assert b"HSG-0042" not in raw_topic_bytes(hub_settings, "council-housing")


def test_example_script_will_not_run_without_the_place_key(hub_settings: Settings) -> None:
    done = _run_example(hub_settings)

    assert done.returncode == 78, done.stderr
    assert "PLACEHUB_PLACE_KEY_FILE: no place key is set" in done.stderr
    assert raw_topic_bytes(hub_settings, "council-housing") == b""
