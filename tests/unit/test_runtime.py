"""The runner's promises without a broker: a failure is retried with the stage reported
stalled, and an error no retry can mend holds the batch (it never raises, so Faust never
acks a batch whose effects were not delivered)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from hub.runtime import Health, StageRunner, Stores
from hub.runtime import run as runtime


def runner(stage: Any) -> StageRunner:
    stores = Stores(
        app=None,  # type: ignore[arg-type]
        tables={"marks": {}},
        serde=SimpleNamespace(needs_lookup=lambda value: False),  # type: ignore[arg-type]
        dlq_topic="dlq",
        audit_topic="audit",
        partitions=1,
        batch_max=1,
        batch_within_s=0.01,
        health=Health(),
        count=lambda name, labels, n: None,
        observe=lambda name, labels, value: None,
    )
    return StageRunner(stage, stores)


def message_at(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=0, offset=offset, key=None, value=b"", headers=[])


def test_a_failing_step_is_retried_and_the_stage_is_stalled_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "BACKOFF_S", (0,))
    run = runner(SimpleNamespace(name="view", tables=(), writes=()))
    seen: list[dict[str, str]] = []

    async def flaky() -> str:
        seen.append(dict(run.stores.health.stalled))
        if len(seen) < 3:
            raise ConnectionError("broker away")
        return "delivered"

    assert asyncio.run(run._until_done("delivery", flaky)) == "delivered"
    assert seen == [{}, {"view": "ConnectionError"}, {"view": "ConnectionError"}]
    assert run.stores.health.stalled == {}


def test_a_stage_that_raises_holds_its_batch_instead_of_letting_faust_ack_it() -> None:
    class Broken:
        name, tables, writes = "gate", (), ()

        def process(self, *args: Any) -> Any:
            raise RuntimeError("a bug")

    run = runner(Broken())

    async def one_batch() -> None:
        event = SimpleNamespace(message=message_at(0))
        await asyncio.wait_for(run.run([event]), timeout=0.2)  # type: ignore[list-item]

    with pytest.raises(TimeoutError):  # still holding: it never returned or raised
        asyncio.run(one_batch())
    assert run.stores.health.stalled == {"gate": "failed processing a batch (see the log)"}


def test_records_at_or_below_the_stages_mark_are_not_processed_again() -> None:
    seen: list[int] = []

    class Counting:
        name, tables, writes = "view", (), ()

        def process(self, records: Any, state: Any, now: Any) -> Any:
            seen.extend(r.offset for r in records)
            raise RuntimeError("stop here")  # the runner then holds the batch

    run = runner(Counting())
    run.stores.tables["marks"]["view|t|0"] = 4  # type: ignore[index]
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                topic="t", partition=0, offset=n, key=None, value=b"", headers=[]
            )
        )
        for n in range(3, 7)
    ]

    async def one_batch() -> None:
        await asyncio.wait_for(run.run(events), timeout=0.2)  # type: ignore[arg-type]

    with pytest.raises(TimeoutError):
        asyncio.run(one_batch())
    assert seen == [5, 6]


def test_records_delivered_out_of_order_are_each_processed_once() -> None:
    """Faust can drop records and deliver later ones; the watchdog reads the dropped ones
    again. A mark that only said 'done up to offset 6' skipped them for good."""
    seen: list[int] = []

    class Counting:
        name, tables, writes = "view", (), ()

        def process(self, records: Any, state: Any, now: Any) -> Any:
            seen.extend(r.offset for r in records)
            raise RuntimeError("stop here")

    run = runner(Counting())
    run.stores.tables["marks"]["view|t|0"] = [[0, 2], [5, 6]]  # type: ignore[index]
    events = [SimpleNamespace(message=message_at(n)) for n in range(8)]

    async def one_batch() -> None:
        await asyncio.wait_for(run.run(events), timeout=0.2)  # type: ignore[arg-type]

    with pytest.raises(TimeoutError):
        asyncio.run(one_batch())
    assert seen == [3, 4, 7]
