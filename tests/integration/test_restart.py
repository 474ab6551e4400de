"""A worker killed with ``kill -9`` and started again is back in seconds, not a minute; a
worker stopped cleanly leaves its consumer group at once.

Measured against the real broker: the time from starting the new process until it is
healthy, and until an event published after the restart is in its partner's books.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient

from connectors import ConsentDraft, EventDraft, Publisher
from hub.config import Settings
from hub.models import BasisKind, ConsentStatus, HousingEvent, HousingKind, LawfulBasis
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess

PARTNER = "council-housing"
NHS = "943 476 5919"
BACK_WITHIN_S = 15.0
LEFT_WITHIN_S = 5.0


def _event(minutes: int) -> EventDraft:
    return EventDraft(
        source_ref="HSG-1",
        identifiers={"nhs": NHS},
        basis=LawfulBasis(kind=BasisKind.CONSENT, consent_id="c-1", purpose="early-help"),
        payload=HousingEvent(kind=HousingKind.ARREARS),
        occurred_at=datetime.now(UTC) - timedelta(minutes=minutes),
    )


def _books(worker: WorkerProcess) -> dict[str, Any]:
    reply = worker.get(f"/v1/partners/{PARTNER}/status")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def _wait_for_books(worker: WorkerProcess, received: int, timeout_s: float) -> dict[str, Any]:
    """The partner's books once ``received`` records are in and none is in flight."""
    deadline = time.monotonic() + timeout_s
    while True:
        books = _books(worker)
        if books["received"] == received and books["in_flight"] == 0:
            return books
        assert time.monotonic() < deadline, f"books never showed {received} settled: {books}"
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _quiet_group_descriptions(caplog: pytest.LogCaptureFixture) -> None:
    # kafka-python cannot decode Faust's member metadata and logs all its bytes, each poll.
    caplog.set_level(logging.ERROR, logger="kafka.admin._groups")


def _wait_for_group(
    settings: Settings, until: Callable[[dict[str, Any]], bool], expecting: str, timeout_s: float
) -> dict[str, Any]:
    """The description of the hub's consumer group once ``until`` holds for it.

    Raises AssertionError after ``timeout_s``, naming the group, ``expecting`` and the last
    state and members seen.
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            group: dict[str, Any] = admin.describe_groups([settings.app_id])[settings.app_id]
            if until(group):
                return group
            if time.monotonic() > deadline:
                members = [m.get("group_instance_id") for m in group.get("members") or []]
                raise AssertionError(
                    f"consumer group {settings.app_id} did not show {expecting} within "
                    f"{timeout_s}s; last state {group.get('group_state')}, members {members}"
                )
            time.sleep(0.1)
    finally:
        admin.close()


def _has_members(group: dict[str, Any]) -> bool:
    return bool(group.get("members"))


def _is_empty(group: dict[str, Any]) -> bool:
    return not group.get("members") and group.get("group_state") in ("Empty", "Dead")


def _load_twenty_events(worker: WorkerProcess) -> None:
    """A consent and 20 events for one person, settled in the partner's books."""
    with Publisher(PARTNER, "northgate", worker.settings) as housing:
        housing.publish_consent(
            ConsentDraft(
                consent_id="c-1",
                identifiers={"nhs": NHS},
                purposes=["early-help"],
                sharing_partners=[PARTNER],
                status=ConsentStatus.GIVEN,
            )
        )
        housing.publish_many([_event(minutes=n) for n in range(1, 21)])
    _wait_for_books(worker, received=20, timeout_s=60)


def test_a_worker_restarted_after_kill_9_is_healthy_and_processing_within_15_s(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    _load_twenty_events(worker)

    worker.stop(sig=signal.SIGKILL)  # no flush, no commit, no LeaveGroup
    restarted_at = time.monotonic()
    worker.start(timeout_s=120)  # returns once /v1/health answers 200
    healthy_s = time.monotonic() - restarted_at

    with Publisher(PARTNER, "northgate", worker.settings) as housing:
        housing.publish(_event(minutes=0))
    books = _wait_for_books(worker, received=21, timeout_s=120)
    processing_s = time.monotonic() - restarted_at

    assert books["in_view"] == 21 and books["balanced"] is True, books
    assert healthy_s < BACK_WITHIN_S, f"healthy {healthy_s:.1f} s after the restart"
    assert processing_s < BACK_WITHIN_S, f"processing {processing_s:.1f} s after the restart"


def test_a_worker_stopped_cleanly_leaves_its_group_at_once_so_replay_can_run(
    make_worker: WorkerFactory,
) -> None:
    """A static member sends no LeaveGroup of its own; the worker removes itself (KIP-345's
    LeaveGroup by instance id) once its consumer has stopped, not 60 s later."""
    worker = make_worker()
    _load_twenty_events(worker)
    _wait_for_group(worker.settings, _has_members, "the worker as a member", timeout_s=30)

    worker.stop(sig=signal.SIGTERM)  # returns once the process has exited
    _wait_for_group(worker.settings, _is_empty, "no members", timeout_s=LEFT_WITHIN_S)
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "replay", "--json"],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    restarted_at = time.monotonic()
    worker.start(timeout_s=120)  # a fresh join of the empty group under the same name
    healthy_s = time.monotonic() - restarted_at
    with Publisher(PARTNER, "northgate", worker.settings) as housing:
        housing.publish(_event(minutes=0))
    books = _wait_for_books(worker, received=21, timeout_s=120)

    assert books["in_view"] == 21 and books["balanced"] is True, books
    assert healthy_s < BACK_WITHIN_S, f"healthy {healthy_s:.1f} s after the restart"
