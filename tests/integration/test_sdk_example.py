"""The partner example script is also a test: it runs as written against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

from hub.config import PROJECT_ROOT, Settings
from tests.integration.connector_helpers import published_events


def test_example_script_publishes_and_reports_each_failure(hub_settings: Settings) -> None:
    env = {
        **os.environ,
        "PLACEHUB_BOOTSTRAP_SERVERS": hub_settings.bootstrap_servers,
        "PLACEHUB_TOPIC_PREFIX": hub_settings.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "examples" / "publish_from_partner.py")],
        env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "HSG-0043: not sent, no consent or agreement recorded"
    assert lines[2] == "HSG-0044: not sent, /identifiers/nhs: the NHS number's check digit is wrong"
    assert lines[-1] == "published 1, rejected 2"
    events = published_events(hub_settings, "council-housing")
    assert [e.source_ref for e in events] == ["HSG-0042"]
    assert lines[0].startswith(f"HSG-0042: sent as {events[0].event_id}")
