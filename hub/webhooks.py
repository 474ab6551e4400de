"""Webhooks: each partner with a webhook is told of the alerts it receives, signed.

For every record the alerts stage writes to ``hub.alerts`` (an ``Alert``, or a tombstone
when an alert is erased), each recipient partner that declares a webhook in the partners
file (``hub.partners.Webhook``) gets a POST of a thin JSON notification, ``alert.raised``
or ``alert.erased`` (``hub.webhook_notices``: what it says and why so little), signed with
HMAC-SHA256 over the timestamp and the body (``connectors.webhooks``: the scheme, and the
helper a partner's receiver verifies with). Failed attempts are retried with exponential
backoff and jitter; after the last one the notification is dead-lettered to ``hub.dlq``
(``DeadLetter``, stage ``webhooks``, the reason code and partner in ``reason``, the
notification as ``original`` and the ``hub.alerts`` record as its source), so it can be
sent again by hand (``hub.webhook_sender``: attempts, figures, metrics). Each notification
is audited (``alert.webhook`` on the person, the hub as actor) before its first attempt,
so a subject access request shows that the person's alert went out.

**Nothing lost.** Delivery reads ``hub.alerts`` in a consumer group of its own
(``<app_id>-webhooks``) and commits a partition's offset only past records whose every
notification was delivered or dead-lettered (``Acks``). Every worker runs it in that one
group, so the partitions of ``hub.alerts`` are shared between the workers like the stages'.
A restart or a rebalance delivers again what was not committed: delivery is at least once,
and a notification keeps its delivery id (made from the record's coordinates), so a
receiver acts on each once.

**Erasures.** A tombstone has no value, so to know whom to tell, delivery keeps each live
alert's person, rule and recipients (``Told``) per partition. When a worker is given a
partition it reads it from the beginning: records before the group's committed offset
only rebuild that memory (the topic is compacted, so this is about one record per alert),
the rest are delivered. An alert whose raise compaction has already removed along with it
is erased without a notification (logged by count).

**A record not readable now** (its schema not to be had, the registry away) stops the
step: the worker's health shows the ``webhooks`` stage stalled, and reading starts again
from the first record not yet taken on, so none is skipped (one that is not an ``Alert``
at all is logged and passed over: it has nothing to tell).

**Stopping.** Delivery is a Faust app task: the worker's stop cancels it, in-flight
attempts are abandoned (their records are not committed, so they go again after the
restart), the done offsets are committed and the consumer leaves its group.

**Not blocking.** Everything is asyncio on the worker's loop (aiokafka, aiohttp); the one
blocking call, a registry lookup for a schema not yet cached, runs in a thread. At most
``WINDOW`` records per worker wait for their notifications; past that the partitions are
paused, so one partner that fails everything holds the others up only once its backlog
fills the window, for as long as its retries last.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from hub.app import Hub
from hub.batch import partition_for
from hub.deadletter import dead_letter
from hub.errors import InputError
from hub.kafka_clients import aiokafka_options
from hub.models import Alert, AvroRecord, utc_now
from hub.partners import webhook_secrets
from hub.runtime import producer_of
from hub.runtime.rolls import ROLL
from hub.stages.effects import audit_record
from hub.webhook_notices import Acks, Notice, Told, backoff_s, notices, told_of
from hub.webhook_sender import PartnerSender, WebhookStats

__all__ = ["WINDOW", "WebhookDelivery", "install_webhooks", "webhook_stats"]

log = logging.getLogger(__name__)

WINDOW = 1000  # records per worker waiting for their notifications before reading pauses
STAGE = "webhooks"  # the stage a dead letter names
_SEND_RETRY_S = 1.0  # first wait before writing an audit record or dead letter again
AUDIT_ACTION = "alert.webhook"  # the audit trail's name for a notification sent
RECOVER_S = 1.0  # wait after a step that failed before reading again


class WebhookDelivery:
    """Reads ``hub.alerts`` and delivers its notifications (module docstring)."""

    def __init__(self, hub: Hub, senders: dict[str, PartnerSender]) -> None:
        self.hub, self.senders = hub, senders
        self.topic = hub.topics.alerts
        self.acks = Acks()
        self.known: dict[int, dict[str, Told]] = {}  # partition → alert id → what was told
        self.replay_to: dict[int, int] = {}  # partition → the group's committed offset
        # Partitions whose memory is being rebuilt are not ready: aiokafka goes on fetching
        # while the rebalance listener awaits, and a record fetched then is dropped (the
        # seek to the beginning reads it again); each offset is read once.
        self.ready: set[int] = set()
        self.last_read: dict[int, int] = {}  # partition → the last offset read
        self.tasks: dict[int, set[asyncio.Task[None]]] = {}
        self.committed: dict[int, int] = {}
        self.untold = 0  # erasures of alerts no longer known (see the module docstring)
        self.consumer: Any = None
        self.session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Deliver until cancelled (the worker stopping), then commit and leave."""
        settings = self.hub.settings
        self.consumer = AIOKafkaConsumer(
            **aiokafka_options(settings),
            group_id=f"{settings.app_id}-webhooks",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.session = aiohttp.ClientSession()
        try:
            await self.consumer.start()
            self.consumer.subscribe([self.topic], listener=_Listener(self))
            while True:
                await self.step_or_recover()
        finally:
            await self._close()

    async def step_or_recover(self) -> None:
        """One step; after a failure, read again from the first record not yet read (so no
        record is skipped), with the worker's health showing it until a step succeeds."""
        try:
            await self._step()
            self.hub.health.stalled.pop(STAGE, None)
        except KafkaError as exc:  # the broker away for a while: read again
            log.warning("webhooks: reading paused (%s)", type(exc).__name__)
            await asyncio.sleep(RECOVER_S)
        except Exception as exc:  # a record not readable now (its schema not to be had...)
            self.hub.health.stalled[STAGE] = type(exc).__name__
            log.error("webhooks: a record not read (%s); read again", type(exc).__name__)
            for p in self.ready:
                tp = TopicPartition(self.topic, p)
                self.consumer.seek(tp, self.last_read.get(p, -1) + 1)
            await asyncio.sleep(RECOVER_S)

    async def _step(self) -> None:
        """Read what there is room for, start its deliveries, commit what is done."""
        assigned = self.consumer.assignment()
        if self.acks.pending() >= WINDOW:
            self.consumer.pause(*assigned)
        else:
            self.consumer.resume(*assigned)
        batches = await self.consumer.getmany(timeout_ms=200, max_records=200)
        for tp, messages in batches.items():
            for message in messages:
                await self._read(tp.partition, message)
        await self._commit(None)

    async def _read(self, partition: int, message: Any) -> None:
        """Remember what ``message`` says of its alert and start its notifications."""
        offset, key = message.offset, (message.key or b"").decode(errors="replace")
        if partition not in self.ready or offset <= self.last_read.get(partition, -1):
            return
        known = self.known.setdefault(partition, {})
        alert = await self._alert(message) if key != ROLL else None
        replaying = offset < self.replay_to.get(partition, 0)
        found: list[Notice] = []
        if key != ROLL and not replaying:
            source = f"{self.topic}:{partition}:{offset}"
            at = datetime.fromtimestamp(message.timestamp / 1000, UTC)
            found = notices(key, alert, known.get(key), self.senders, source, at)
            if message.value is None and key not in known:
                self.untold += 1
                log.info("webhooks: %d erasures of alerts no longer known", self.untold)
        if alert is not None:
            known[key] = told_of(alert)
        else:
            known.pop(key, None)
        self.acks.add(partition, offset, len(found))
        self.last_read[partition] = offset
        for notice in found:
            task = asyncio.create_task(self._deliver(notice, partition, offset))
            running = self.tasks.setdefault(partition, set())
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(_report)

    async def _alert(self, message: Any) -> Alert | None:
        """The record's alert (None for a tombstone or a record that is not an alert)."""
        if message.value is None:
            return None
        serde = self.hub.serde
        try:
            if serde.needs_lookup(message.value):  # a registry read: blocking
                await asyncio.to_thread(serde.lookup, message.value)
            return serde.decode(message.value, Alert)
        except InputError:
            log.warning("webhooks: a record of %s is not an Alert; skipped", self.topic)
            return None

    async def _deliver(self, notice: Notice, partition: int, offset: int) -> None:
        """Deliver ``notice``, or dead-letter it; then its record is one notice nearer done."""
        assert self.session is not None
        # The partner is told of the person's alert: audited (the hub as actor) first.
        audit = audit_record(AUDIT_ACTION, notice.person_id, utc_now())
        await self._send(self.hub.topics.audit, notice.person_id.encode(), audit)
        outcome = await self.senders[notice.partner].deliver(self.session, notice)
        if outcome.failure is not None:
            log.warning(
                "webhooks: %s %s dead-lettered after %d attempts (%s)",
                notice.partner,
                notice.delivery_id,
                outcome.attempts,
                outcome.failure,
            )
            reason = (
                f"webhook of partner {notice.partner}: {outcome.failure} after "
                f"{outcome.attempts} attempts ({notice.type}, delivery {notice.delivery_id})"
            )
            letter = dead_letter(
                reason, STAGE, self.topic, partition, offset, notice.body, utc_now()
            )
            await self._send(self.hub.topics.dlq, notice.delivery_id.encode(), letter)
        self.acks.done(partition, offset)

    async def _send(self, topic: str, key: bytes, record: AvroRecord) -> None:
        """Send ``record`` (an audit record, a dead letter), again and again until Kafka
        has it: a notification is never committed past before both are written."""
        value = self.hub.serde.encode(record, f"{topic}-value")
        partition = partition_for(key, self.hub.settings.partitions)
        attempt = 1
        while True:
            try:
                sent = await producer_of(self.hub.app).send(
                    topic, value, key=key, partition=partition
                )
                await sent
                return
            except KafkaError as exc:
                log.warning("webhooks: %s not written (%s); again", topic, type(exc).__name__)
                await asyncio.sleep(backoff_s(attempt, _SEND_RETRY_S, 30))
                attempt += 1

    async def _commit(self, partitions: set[int] | None) -> None:
        """Commit each partition (of ``partitions``, or all) up to its first record not done."""
        offsets = {
            p: o
            for p, o in self.acks.snapshot().items()
            if (partitions is None or p in partitions) and o > self.committed.get(p, -1)
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(
                {TopicPartition(self.topic, p): o for p, o in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as exc:  # a rebalance: the next owner goes on
            log.info("webhooks: commit not made (%s)", type(exc).__name__)
            return
        self.committed.update(offsets)

    async def assigned(self, partitions: set[int]) -> None:
        """Read newly given partitions from the beginning; deliver from the committed offset."""
        self.ready -= partitions  # before any await (the class's __init__ says why)
        for p in partitions:
            tp = TopicPartition(self.topic, p)
            self.replay_to[p] = await self.consumer.committed(tp) or 0
            self.committed[p] = self.replay_to[p]
            self.known[p], self.last_read[p] = {}, -1
            await self.consumer.seek_to_beginning(tp)
            self.ready.add(p)

    async def revoked(self, partitions: set[int]) -> None:
        """Commit what is done of partitions taken away and abandon the rest of them."""
        self.ready -= partitions
        await self._commit(partitions)
        for p in partitions:
            for task in self.tasks.pop(p, set()):
                task.cancel()
            self.known.pop(p, None)
            self.replay_to.pop(p, None)
            self.last_read.pop(p, None)
            self.committed.pop(p, None)
        self.acks.forget(partitions)

    async def _close(self) -> None:
        running = [task for tasks in self.tasks.values() for task in tasks]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        try:
            if self.consumer is not None:
                await self._commit(None)
                await self.consumer.stop()
                log.info("webhooks: stopped; what was done is committed")
        finally:
            if self.session is not None:
                await self.session.close()


def _report(task: asyncio.Task[None]) -> None:
    """Log a delivery that failed unexpectedly (its record stays uncommitted, so it is sent
    again after a restart); the error's class only, as a message could quote the body."""
    if not task.cancelled() and task.exception() is not None:
        log.error("webhooks: a delivery failed (%s)", type(task.exception()).__name__)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the delivery which partitions of ``hub.alerts`` it was given or lost."""

    def __init__(self, delivery: WebhookDelivery) -> None:
        self.delivery = delivery

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.delivery.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.delivery.assigned({tp.partition for tp in assigned})


_STATS: weakref.WeakKeyDictionary[Hub, WebhookStats] = weakref.WeakKeyDictionary()


def webhook_stats(hub: Hub) -> WebhookStats:
    """This worker's webhook figures (zero where nothing was sent)."""
    return _STATS.setdefault(hub, WebhookStats())


def install_webhooks(hub: Hub) -> WebhookDelivery | None:
    """Start webhook delivery with the worker, if any partner has a webhook (reading the
    secrets now: a missing one stops the worker at start, naming the file, line and key)."""
    secrets = webhook_secrets(hub.settings.partners_file, hub.partners)
    stats = webhook_stats(hub)
    senders = {
        p.id: PartnerSender(p.id, p.webhook, secrets[p.id], stats, hub.metrics)
        for p in hub.partners
        if p.webhook is not None
    }
    hub.metrics.declare_webhooks(senders)
    if not senders:
        return None
    delivery = WebhookDelivery(hub, senders)
    hub.app.task(delivery.run)
    return delivery
