"""Integration fixtures: the real local broker, and hub workers as real processes.

Each test gets its own topic prefix and Faust app id, so tests never see each other's
records, consumer groups or changelogs on the shared broker.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub import broker
from hub.config import PROJECT_ROOT, Settings
from tests.integration.helpers import WorkerProcess, drop_topics, free_port, worker_env


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


# The data-sharing agreement test hubs know, in force from a year ago to a year ahead of
# today: the demo's agreements in deploy/local carry real calendar dates, which pass.
TEST_AGREEMENT_ID = "dsa-test-early-help"
TEST_AGREEMENT = """\
id: {id}
title: Early help agreement for tests, in force around today
partners: [{partners}]
event_types: [{event_types}]
purposes: [early-help]
roles: [practitioner, admin]
retention_days: 730
valid_from: {valid_from}
valid_to: {valid_to}
"""
TEST_PARTNERS = ("council-housing", "northfield-school", "city-health")
TEST_EVENT_TYPES = ("housing.*", "education.*", "health.*")


def write_agreement(
    folder: Path,
    partners: tuple[str, ...] = TEST_PARTNERS,
    event_types: tuple[str, ...] = TEST_EVENT_TYPES,
) -> Path:
    """``folder`` (made) holding ``TEST_AGREEMENT_ID`` between ``partners`` for
    ``event_types``, valid from a year ago to a year from today."""
    folder.mkdir()
    today = datetime.now(UTC).date()  # the hub checks validity on the UTC date
    text = TEST_AGREEMENT.format(
        id=TEST_AGREEMENT_ID,
        partners=", ".join(partners),
        event_types=", ".join(f'"{t}"' for t in event_types),
        valid_from=(today - timedelta(days=365)).isoformat(),
        valid_to=(today + timedelta(days=365)).isoformat(),
    )
    (folder / "early-help.yaml").write_text(text)
    return folder


@pytest.fixture
def agreements_dir(tmp_path: Path) -> Path:
    """A folder holding ``TEST_AGREEMENT_ID``, valid from a year ago to a year from today."""
    return write_agreement(tmp_path / "agreements")


@pytest.fixture
def hub_settings(
    broker_settings: Settings, tmp_path: Path, agreements_dir: Path
) -> Iterator[Settings]:
    """Settings for one test's private hub: own topic prefix, app id, port, state and
    agreements (see ``agreements_dir``). Its topics are deleted after the test (its
    workers are stopped first): a shared broker that kept every test hub's some hundred
    partitions ran out of heap."""
    run = uuid.uuid4().hex[:8]
    settings = broker_settings.model_copy(
        update={
            "topic_prefix": f"t{run}.",
            "app_id": f"placehub-t{run}",
            "web_port": free_port(),
            "state_dir": tmp_path / "state",
            "agreements_dir": agreements_dir,
        }
    )
    yield settings
    drop_topics(settings)


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def make_worker(hub_settings: Settings, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start workers of ``hub_settings``' hub; extra ``PLACEHUB_*`` values as keywords.

    Every worker it started is stopped after the test.
    """
    started: list[WorkerProcess] = []

    def start(**overrides: Any) -> WorkerProcess:
        settings = hub_settings.model_copy(update=overrides)
        env = worker_env(settings, overrides)
        process = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", env=env)
        started.append(process)
        process.start()
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def worker(make_worker: WorkerFactory) -> WorkerProcess:
    """A running worker for ``hub_settings``; stopped after the test."""
    return make_worker()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
