"""A worker killed with ``kill -9`` and started again is back in seconds, not a minute.

Measured against the real broker: the time from starting the new process until it is
healthy, and until an event published after the restart is in its partner's books.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors import ConsentDraft, EventDraft, Publisher
from hub.models import BasisKind, ConsentStatus, HousingEvent, HousingKind, LawfulBasis
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess

PARTNER = "council-housing"
NHS = "943 476 5919"
BACK_WITHIN_S = 15.0


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


def test_a_worker_restarted_after_kill_9_is_healthy_and_processing_within_15_s(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
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
