"""The bench's "chain alone" against the real registry: every stage's pure ``process`` fed
the one before it, so the figure that bounds issue 15's item 2 is the whole chain's work
over every event, not a rate over records lost on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.config import Settings
from tests.bench import pipeline
from tests.bench.chain_alone import chain_alone
from tests.bench.harness import Bench


@pytest.fixture
def bench_hub(broker_settings: Settings) -> Iterator[Settings]:
    """A bench hub's settings (own prefix, schemas registered), its topics deleted after."""
    bench = Bench(broker_settings, quick=True)
    settings = bench.hub("chain-alone")
    try:
        yield settings
    finally:
        bench.delete(settings)


def test_the_chain_alone_places_every_event_through_every_stage(bench_hub: Settings) -> None:
    load = pipeline._load(bench_hub, 400, 1)
    chain = chain_alone(bench_hub, load.consents, load.batches[0])
    assert chain.events == 400
    # The place's 400 events are about 250 people once identity has joined their tokens.
    assert 100 < chain.people <= 400
    # Consents were loaded before the clock started, and no event waited for one.
    stages = {"gate", "identity", "view", "alerts", "patterns-people", "patterns"}
    assert set(chain.per_event_us()) == stages
    assert chain.rate > 0 and all(us > 0 for us in chain.per_event_us().values())


def test_the_chain_alone_refuses_a_rate_over_events_that_waited(bench_hub: Settings) -> None:
    load = pipeline._load(bench_hub, 50, 1)
    held = r"dead-lettered 0 records and held [1-9]\d* consents' events"
    with pytest.raises(RuntimeError, match=held):
        chain_alone(bench_hub, [], load.batches[0])  # no consents: every event is held
