"""A partner's bulk load of consents and events together: the gate waits for the consents
(``hub.runtime.flow``), and every event still reaches its view."""

from __future__ import annotations

import random

from connectors import Publisher
from connectors.simulate import synthetic_nhs_number
from tests.integration.conftest import WorkerFactory
from tests.integration.test_stream_core import HOUSING, consent_draft, draft, status, wait_until

CONSENTS, EVENTS, BOUND = 20_000, 2_000, 1_000


def test_a_bulk_load_of_consents_and_events_together_reads_the_consents_first(
    make_worker: WorkerFactory,
) -> None:
    """The worker is stopped while the partner sends its history: 2,000 events, then 20,000
    consents (the first 2,000 cover the events). Started again, its consent partitions are
    far over the bound, so the gate waits until they are read down to half of it; then
    every event is in its view, none held, and the books balance."""
    worker = make_worker(consent_backlog_max=BOUND, watchdog_interval_s=1)
    worker.stop()
    rng, numbers = random.Random(7), dict[str, None]()
    while len(numbers) < CONSENTS:
        numbers[synthetic_nhs_number(rng)] = None
    people = list(enumerate(numbers))
    with Publisher("council-housing", "northgate", worker.settings) as housing:
        for start in range(0, EVENTS, 500):
            housing.publish_many(
                draft({"nhs": nhs}, HOUSING, consent_id=f"c-bulk-{n}", minutes=n)
                for n, nhs in people[start : start + 500]
            )
        for start in range(0, CONSENTS, 1_000):
            housing.publish_consents(
                consent_draft(f"c-bulk-{n}", {"nhs": nhs})
                for n, nhs in people[start : start + 1_000]
            )

    worker.start()
    wait_until(
        lambda: status(worker, "council-housing")["in_view"] == EVENTS,
        timeout_s=300,
        interval_s=1,
        describe=lambda: status(worker, "council-housing"),
    )
    final = status(worker, "council-housing")
    assert (final["held_in_quarantine"], final["in_flight"], final["balanced"]) == (0, 0, True)
    log = worker.log_path.read_text()
    paused, resumed = log.find("pausing the gate's"), log.find("resuming the gate's")
    assert 0 <= paused < resumed, "the gate did not wait for the consents"
