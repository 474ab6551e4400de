"""Webhook delivery's reading loop (hub.webhooks) over a fake consumer: a record that
cannot be read for now (its schema not to be had) is read again, with the records after
it, and nothing is committed past it meanwhile; the worker's health shows the stall until
a step succeeds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from hub import webhooks
from hub.models import Alert, AlertSeverity
from hub.runtime import Health
from hub.webhook_notices import Notice
from hub.webhook_sender import Outcome
from hub.webhooks import STAGE, WebhookDelivery

TOPIC = "hub.alerts"
NOW = datetime.now(UTC).replace(microsecond=0)


def alert(n: int) -> Alert:
    return Alert(
        alert_id=f"a-{n}",
        person_id="p-" + "a" * 20,
        rule_code="multi-domain-needs",
        severity=AlertSeverity.HIGH,
        explanation=["housing.arrears"],
        event_ids=["0b6d4a4e-1f7e-4c8e-9a51-3d2c1b0a9f8e"],
        partners=["council-housing"],
        created_at=NOW,
        recipients=["council-housing"],
    )


class FlakySerde:
    """Decodes ``b"<n>"`` as alert n; the first decode of alert 1 fails (the registry away)."""

    def __init__(self) -> None:
        self.failed = False

    def needs_lookup(self, value: bytes) -> bool:
        return False

    def decode(self, value: bytes, model: type[Alert]) -> Alert:
        if value == b"1" and not self.failed:
            self.failed = True
            raise ConnectionError("the registry did not answer")
        return alert(int(value))


class FakeConsumer:
    """One partition holding ``values``; ``getmany`` gives what follows the position."""

    def __init__(self, values: list[bytes]) -> None:
        self.records = [
            SimpleNamespace(offset=n, key=f"a-{v.decode()}".encode(), value=v, timestamp=0)
            for n, v in enumerate(values)
        ]
        self.position = 0
        self.commits: list[int] = []

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, 0)}

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        batch = self.records[self.position :]
        self.position = len(self.records)
        return {TopicPartition(TOPIC, 0): batch} if batch else {}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TopicPartition(TOPIC, 0)])


async def turns() -> None:
    """Let the delivery tasks a step started run to their end."""
    for _ in range(5):
        await asyncio.sleep(0)


class RecordingSender:
    def __init__(self) -> None:
        self.told: list[str] = []

    async def deliver(self, session: object, notice: Notice) -> Outcome:
        self.told.append(notice.body.decode())
        return Outcome(1)


async def test_a_record_not_readable_now_is_read_again_and_nothing_committed_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "RECOVER_S", 0)
    hub: Any = SimpleNamespace(
        topics=SimpleNamespace(alerts=TOPIC, audit="hub.audit"),
        serde=FlakySerde(),
        health=Health(),
    )
    sender = RecordingSender()
    delivery = WebhookDelivery(hub, {"council-housing": sender})
    consumer = FakeConsumer([b"0", b"1", b"2"])
    delivery.consumer, delivery.session = consumer, object()
    delivery.ready, delivery.replay_to, delivery.last_read = {0}, {0: 0}, {0: -1}
    written: list[str] = []

    async def send(topic: str, key: bytes, record: object) -> None:
        written.append(topic)

    monkeypatch.setattr(delivery, "_send", send)

    await delivery.step_or_recover()  # reads 0, fails on 1
    assert hub.health.stalled == {STAGE: "ConnectionError"}
    assert consumer.position == 1 and consumer.commits == []
    for _ in range(3):
        await delivery.step_or_recover()
        await turns()
    assert hub.health.stalled == {}
    assert [f'"alert_id":"a-{n}"' in body for n, body in enumerate(sender.told)] == [True] * 3
    assert consumer.commits[-1] == 3 and consumer.commits == sorted(consumer.commits)
    assert written == ["hub.audit"] * 3  # each notification audited, none dead-lettered
