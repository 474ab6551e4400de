"""Consents before events: the gate waits while a worker's consents are far behind
(``hub.runtime.flow``)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP

from hub.metrics import Metrics
from hub.runtime.commits import Commits
from hub.runtime.flow import ConsentsFirst, backlog, paused_next
from hub.runtime.watchdog import STRIKES, Watchdog

CONSENT = [TP("consent.records", p) for p in range(2)]
GATE = [TP("partner.a.events", p) for p in range(2)]
VIEW = TP("app-view", 0)
JOINED = TP("partner.b.events", 0)  # a partner that joins the running worker later
READERS = {"consent.records": "release", "partner.a.events": "gate", "app-view": "view"}
BOUND = 100


class FakeConsumer:
    """Faust's consumer as the flow and the watchdog use it."""

    def __init__(self) -> None:
        self._committed_offset: dict[TP, int] = {tp: 0 for tp in [*CONSENT, *GATE, VIEW]}
        self.ends: dict[TP, int] = {tp: 0 for tp in [*CONSENT, *GATE, VIEW]}
        self.paused: set[TP] = set()
        self.calls: list[tuple[str, set[TP]]] = []
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def pause_partitions(self, tps: set[TP]) -> None:
        self.calls.append(("pause", set(tps)))
        self.paused |= tps

    def resume_partitions(self, tps: set[TP]) -> None:
        self.calls.append(("resume", set(tps)))
        self.paused -= tps

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: TP) -> int:
        return self.ends[tp]  # everything fetched was handed over

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks += partitions.items()


class FakeMarks:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}


def behind(consumer: FakeConsumer, records: int) -> None:
    """The consent partitions ``records`` past their committed offsets, in all."""
    for n, tp in enumerate(CONSENT):
        consumer.ends[tp] = consumer._committed_offset[tp] + records // 2 + n * (records % 2)


def flow(consumer: FakeConsumer, readers: dict[str, str] | None = None) -> ConsentsFirst:
    commits = Commits(FakeMarks(), readers or dict(READERS))
    return ConsentsFirst(consumer, commits, "consent.records", BOUND)


def look(gate: ConsentsFirst, consumer: FakeConsumer) -> None:
    gate.look(consumer.ends, consumer._committed_offset)


def test_the_gate_waits_over_the_bound_and_until_half_of_it() -> None:
    assert [paused_next(n, BOUND, paused=False) for n in (0, 50, 100, 101)] == [
        False,
        False,
        False,
        True,
    ]
    assert [paused_next(n, BOUND, paused=True) for n in (101, 100, 51, 50, 0)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_the_backlog_counts_only_the_consent_partitions_past_their_commits() -> None:
    consumer = FakeConsumer()
    behind(consumer, 141)
    consumer.ends[GATE[0]] = 5_000  # a partner's backlog is not the consents'
    commits = Commits(FakeMarks(), READERS)
    assert backlog(commits, "consent.records", consumer.ends, consumer._committed_offset) == 141
    consumer._committed_offset[CONSENT[0]] = 30  # 30 of them done
    assert backlog(commits, "consent.records", consumer.ends, consumer._committed_offset) == 111


def test_a_consent_backlog_pauses_only_the_gates_partitions_until_it_is_read() -> None:
    consumer = FakeConsumer()
    shown: list[bool] = []
    gate = flow(consumer)
    gate.show = shown.append
    behind(consumer, BOUND)
    look(gate, consumer)
    assert consumer.calls == [] and not gate.paused  # at the bound: the gate reads on
    behind(consumer, 5 * BOUND)
    look(gate, consumer)
    assert consumer.paused == set(GATE)  # the consents and the view read on
    assert all(gate.holds(tp) for tp in GATE) and not gate.holds(CONSENT[0])
    behind(consumer, BOUND)  # read down to the bound: still waiting (no flapping)
    look(gate, consumer)
    assert consumer.paused == set(GATE)
    consumer.paused.clear()  # Faust made them active again (a rebalance's recovery, say)
    look(gate, consumer)
    assert consumer.paused == set(GATE)  # paused again at the next look
    behind(consumer, BOUND // 2)
    look(gate, consumer)
    assert consumer.paused == set() and consumer.calls[-1] == ("resume", set(GATE))
    assert not gate.paused and not gate.holds(GATE[0])
    look(gate, consumer)
    assert consumer.calls[-1] == ("resume", set(GATE))  # resumed once, not at every look
    assert shown == [False, True, True, True, False, False]


def test_a_partner_that_joins_while_the_gate_waits_waits_too() -> None:
    consumer = FakeConsumer()
    readers = dict(READERS)
    gate = flow(consumer, readers)
    behind(consumer, 2 * BOUND)
    look(gate, consumer)
    consumer.ends[JOINED] = 10
    consumer._committed_offset[JOINED] = 0
    readers["partner.b.events"] = "gate"  # hub.partner_join adds its topic to the readers
    look(gate, consumer)
    assert consumer.paused == {*GATE, JOINED}


def test_the_watchdog_pauses_the_gate_and_does_not_read_a_waiting_partition_again() -> None:
    consumer = FakeConsumer()
    metrics = Metrics()
    commits = Commits(FakeMarks(), READERS)
    dog = Watchdog(
        consumer,
        commits,
        lambda: (),
        lambda name, labels, n: None,
        flow=ConsentsFirst(
            consumer, commits, "consent.records", BOUND, show=metrics.set_gate_paused
        ),
    )
    asyncio.run(dog.look())  # nothing behind: every partition seen at its commits
    consumer.ends[GATE[0]] = 300  # handed to Faust, not done: stuck, were it not waiting
    behind(consumer, 2 * BOUND)
    for _ in range(STRIKES + 2):
        asyncio.run(dog.look())
    assert consumer.paused == set(GATE)
    assert metrics.registry.get_sample_value("placehub_gate_paused") == 1
    # The consent partitions do not move either, and have records after their commits.
    assert {tp for tp, _ in consumer.seeks} == set(CONSENT)
    behind(consumer, 0)  # the consents are read: the gate reads on, and GATE[0] is watched
    # as if new: its commits did not move while it waited, which is no sign of a lost record
    for _ in range(STRIKES):
        asyncio.run(dog.look())
    assert consumer.paused == set()
    assert (GATE[0], 0) not in consumer.seeks
    asyncio.run(dog.look())  # STRIKES looks after the first without moving: read again
    assert (GATE[0], 0) in consumer.seeks
    assert metrics.registry.get_sample_value("placehub_gate_paused") == 0
