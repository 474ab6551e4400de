"""Integration fixtures: the real local broker, and hub workers as real processes.

Each test gets its own topic prefix and Faust app id, so tests never see each other's
records, consumer groups or changelogs on the shared broker.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import broker
from hub.config import PROJECT_ROOT, Settings
from tests.integration.helpers import WorkerProcess, free_port


@pytest.fixture(scope="session")
def broker_settings() -> Settings:
    """Settings of the shared local broker; starts it if it is not running (never skips)."""
    settings = Settings()
    broker.start(settings, progress=lambda line: None)
    return settings


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the project's PostgreSQL (scripts/postgres.sh), started if needed; never skips."""
    script = str(PROJECT_ROOT / "scripts" / "postgres.sh")
    subprocess.run([script, "start"], check=True, capture_output=True, timeout=300)
    done = subprocess.run([script, "dsn"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def hub_settings(broker_settings: Settings, tmp_path: Path) -> Settings:
    """Settings for one test's private hub: own topic prefix, app id, port and state."""
    run = uuid.uuid4().hex[:8]
    return broker_settings.model_copy(
        update={
            "topic_prefix": f"t{run}.",
            "app_id": f"placehub-t{run}",
            "web_port": free_port(),
            "state_dir": tmp_path / "state",
        }
    )


@pytest.fixture
def worker(hub_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A running worker for ``hub_settings``; stopped after the test."""
    env = {
        **os.environ,
        "PLACEHUB_TOPIC_PREFIX": hub_settings.topic_prefix,
        "PLACEHUB_APP_ID": hub_settings.app_id,
        "PLACEHUB_WEB_PORT": str(hub_settings.web_port),
        "PLACEHUB_STATE_DIR": str(hub_settings.state_dir),
        "PLACEHUB_BOOTSTRAP_SERVERS": hub_settings.bootstrap_servers,
    }
    process = WorkerProcess(hub_settings, tmp_path / "worker.log", env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
