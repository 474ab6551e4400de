"""Webhooks on the real broker, to a real aiohttp receiver on loopback: each recipient
partner with a webhook is told of an alert, signed (verified with the SDK's helper); a
receiver failing its first two attempts gets the notification once accepted, with the
retries counted; a receiver that always fails has each notification dead-lettered after
its attempts, in hub.dlq, the metric and the partner's status; an erasure is told as
``alert.erased``; a partner with a webhook that is not a recipient gets nothing; a worker
stopped while a notification is still being retried sends it again after its restart,
with the same delivery id (and the others of its record again, which receivers drop)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from kafka import KafkaAdminClient

from connectors import DuplicateDelivery, Publisher, WebhookRejected, WebhookVerifier
from hub.config import Settings
from hub.models import Alert, AuditRecord, DeadLetter
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import TEST_AGREEMENT_ID, WorkerFactory
from tests.integration.helpers import WorkerProcess, ends, free_port, read_topic
from tests.integration.test_alerts import (
    publish_three_domains,
    publish_under_consent,
    withdraw_consent,
)
from tests.integration.test_stream_core import HEALTH, HOUSING, SCHOOL, draft, wait_until

SECRET = "webhook-test-secret-0123456789abcdef"  # 35 bytes, over the 32 needed
ATTEMPTS = 3
# Valid NHS numbers (mod-11): four people under the test agreement, one under a consent.
AGREED = ["943 476 5919", "943 476 5870", "401 023 2137", "123 456 7806"]
CONSENTED = "123 456 7814"
HOOKS = {  # partner: what its receiver does with the n-th request (1-based) it gets
    "council-housing": lambda n: 503 if n <= 2 else 200,  # fails its first two
    "northfield-school": lambda n: 200,
    "city-health": lambda n: 503,  # always fails
    "riverside-homes": lambda n: 200,  # never a recipient
}


@dataclass
class Receiver:
    """A partner's webhook receiver on loopback, checking each request with the SDK helper."""

    answer: Callable[[int], int]
    verifier: WebhookVerifier = field(default_factory=lambda: WebhookVerifier([SECRET.encode()]))
    requests: int = 0
    deliveries: list[str] = field(default_factory=list)  # each request's delivery id
    accepted: list[dict[str, Any]] = field(default_factory=list)  # genuine, new, 2xx
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)  # reasons

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        self.requests += 1
        self.deliveries.append(headers.get("Placehub-Delivery", ""))
        status = self.answer(self.requests)
        # Only a notification answered 2xx is remembered (a failure asks for it again).
        verifier = self.verifier if status == 200 else WebhookVerifier(self.verifier.secrets)
        try:
            notification = verifier.verify(body, headers)
        except DuplicateDelivery:
            self.duplicates += 1
            return 200
        except WebhookRejected as exc:
            self.rejected.append(exc.reason)
            return 400
        if status == 200:
            self.accepted.append(notification)
        return status


class Receivers:
    """Every partner's receiver, on one aiohttp server in a thread of its own."""

    def __init__(self, answers: dict[str, Callable[[int], int]]) -> None:
        self.port = free_port()
        self.by_partner = {partner: Receiver(answer) for partner, answer in answers.items()}
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, partner: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{partner}"

    def __enter__(self) -> Receivers:
        self.thread.start()
        assert self.ready.wait(10), "the webhook receiver did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _serve(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                receiver = self.by_partner[request.match_info["partner"]]
                status = receiver.handle(body, dict(request.headers))
            return web.Response(status=status)

        app = web.Application()
        app.router.add_post("/hooks/{partner}", hook)
        runner = web.AppRunner(app)
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def told(self, partner: str) -> set[tuple[str, str]]:
        """(type, alert id) of every notification ``partner`` accepted."""
        with self.lock:
            return {(n["type"], n["alert_id"]) for n in self.by_partner[partner].accepted}


def partners_with_webhooks(
    settings: Settings, receivers: Receivers, folder: Path, **retries: float
) -> Path:
    """The place's partners file, with a webhook for each partner ``receivers`` has."""
    place = yaml.safe_load(settings.partners_file.read_text())
    for partner in place["partners"]:
        if partner["id"] in receivers.by_partner:
            partner["webhook"] = {
                "url": receivers.url(partner["id"]),
                "secret_env": "PLACEHUB_TEST_HOOK_SECRET",
                "allow_http": True,  # a loopback receiver
                "max_attempts": ATTEMPTS,
                "backoff_base_s": 0.05,
                "timeout_s": 5,
                **retries,
            }
    path = folder / "partners.yaml"
    path.write_text(yaml.safe_dump(place))
    return path


def alert_records(worker: WorkerProcess) -> list[tuple[str, Alert | None]]:
    """hub.alerts in order, without the roll records: (alert id, alert or None)."""
    s = worker.settings
    serde = Serde(SchemaRegistry(s))
    found = []
    for key, value, _ in read_topic(s, Topics(s.topic_prefix).alerts):
        assert key is not None
        if key != b"placehub:roll":
            found.append((key.decode(), serde.decode(value, Alert) if value else None))
    return found


def expected(worker: WorkerProcess, partner: str) -> set[tuple[str, str]]:
    """What ``partner`` should be told, from hub.alerts: each alert raised for it and each
    erasure of an alert it was told of."""
    found, recipients = set(), {}
    for alert_id, alert in alert_records(worker):
        if alert is not None:
            recipients[alert_id] = alert.recipients
            if partner in alert.recipients:
                found.add(("alert.raised", alert_id))
        elif partner in recipients.get(alert_id, []):
            found.add(("alert.erased", alert_id))
    return found


def delivery_caught_up(settings: Settings) -> bool:
    """Whether the webhook group has committed every partition of hub.alerts to its end:
    every notification of every record there was delivered or dead-lettered."""
    group = f"{settings.app_id}-webhooks"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    topic = Topics(settings.topic_prefix).alerts
    done = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    return all(done.get(p, 0) >= end for p, end in ends(settings, topic).items() if end)


def webhook_status(worker: WorkerProcess, partner: str) -> dict[str, Any]:
    reply = worker.get(f"/v1/partners/{partner}/status")
    assert reply.status_code == 200, reply.text
    figures: dict[str, Any] = reply.json()["webhook"]
    return figures


def metric(worker: WorkerProcess, partner: str, outcome: str) -> float:
    text = worker.get("/metrics").text
    pattern = (
        rf'placehub_webhook_deliveries_total\{{outcome="{outcome}",partner="{partner}"\}} (\S+)'
    )
    found = re.search(pattern, text)
    assert found is not None, f"no {outcome} series for {partner}"
    return float(found.group(1))


def test_alerts_reach_partner_webhooks_signed_retried_and_dead_lettered(
    make_worker: WorkerFactory, hub_settings: Settings, tmp_path: Path
) -> None:
    with Receivers(HOOKS) as receivers:
        partners_file = partners_with_webhooks(hub_settings, receivers, tmp_path)
        worker = make_worker(partners_file=partners_file, test_hook_secret=SECRET)
        s = worker.settings
        publish_under_consent(s, CONSENTED)
        for nhs in AGREED:
            publish_three_domains(s, nhs)

        def raised() -> list[Alert]:
            return [a for _, a in alert_records(worker) if a is not None]

        wait_until(lambda: len({a.person_id for a in raised()}) == 5, describe=raised)
        consented = next(a for a in raised() if "southside-primary" in a.recipients)
        withdraw_consent(s, CONSENTED)
        erased = ("alert.erased", consented.alert_id)
        wait_until(lambda: erased in expected(worker, "council-housing"))
        # The barrier: every record of hub.alerts delivered or dead-lettered, and committed.
        wait_until(lambda: delivery_caught_up(s), timeout_s=90)

        housing_told = expected(worker, "council-housing")
        assert erased in housing_told and len(housing_told) >= 6  # five raised, one erased
        for partner in ("council-housing", "northfield-school"):
            assert receivers.told(partner) == expected(worker, partner), partner
        assert receivers.told("riverside-homes") == set()
        assert receivers.by_partner["riverside-homes"].requests == 0
        for partner, receiver in receivers.by_partner.items():
            assert receiver.rejected == [], partner  # every signature verified

        # Housing's receiver failed its first two attempts: two retries, nothing lost.
        housing_figures = webhook_status(worker, "council-housing")
        assert housing_figures["retried"] == 2
        assert housing_figures["delivered"] == len(housing_told)
        assert housing_figures["dead_lettered"] == 0
        assert housing_figures["last_failure"] == "http-5xx"

        # Health's receiver always fails: each notification dead-lettered after 3 attempts.
        health_told = expected(worker, "city-health")
        assert len(health_told) >= 6
        health_figures = webhook_status(worker, "city-health")
        assert health_figures["dead_lettered"] == len(health_told)
        assert health_figures["delivered"] == 0
        assert health_figures["failed_attempts"] == ATTEMPTS * len(health_told)
        assert receivers.by_partner["city-health"].requests == ATTEMPTS * len(health_told)
        assert health_figures["last_failure"] == "http-5xx"
        assert health_figures["last_failed_at"] is not None
        assert webhook_status(worker, "riverside-homes")["delivered"] == 0
        place = worker.get("/v1/partners/status", token="demo-steward").json()["partners"]
        assert place["city-health"]["webhook"] == health_figures
        assert place["southside-primary"]["webhook"] is None  # no webhook declared
        assert worker.get("/v1/partners/city-health/status", token=None).status_code == 401

        serde = Serde(SchemaRegistry(s))
        letters = [
            serde.decode(value, DeadLetter)
            for _, value, _ in read_topic(s, Topics(s.topic_prefix).dlq)
            if value is not None
        ]
        webhook_letters = [x for x in letters if x.stage == "webhooks"]
        assert len(webhook_letters) == len(health_told)
        told_in_letters = {
            (json.loads(x.original)["type"], json.loads(x.original)["alert_id"])
            for x in webhook_letters
        }
        assert told_in_letters == health_told
        for letter in webhook_letters:
            assert "city-health: http-5xx after 3 attempts" in letter.reason
            assert letter.source_topic == Topics(s.topic_prefix).alerts
        # Each notification sent is audited on its person, the hub as actor.
        audits = [
            serde.decode(value, AuditRecord)
            for _, value, _ in read_topic(s, Topics(s.topic_prefix).audit)
            if value is not None
        ]
        sent = [a for a in audits if a.action == "alert.webhook"]
        told = {p: expected(worker, p) for p in ("council-housing", "northfield-school")}
        assert len(sent) == len(health_told) + sum(len(t) for t in told.values())
        people = {a.person_id for a in raised()}
        assert all((a.actor, a.role) == ("hub", "system") and a.person_id in people for a in sent)
        # Rounded down to a multiple of 5, as every series about single people.
        assert metric(worker, "city-health", "dead_lettered") == len(health_told) // 5 * 5 >= 5
        assert metric(worker, "council-housing", "delivered") == len(housing_told) // 5 * 5
        assert metric(worker, "riverside-homes", "delivered") == 0


def test_a_notification_cut_short_by_a_stop_is_sent_after_the_restart_with_its_id(
    make_worker: WorkerFactory, hub_settings: Settings, tmp_path: Path
) -> None:
    health_up = threading.Event()
    answers: dict[str, Callable[[int], int]] = {
        "council-housing": lambda n: 200,
        "city-health": lambda n: 200 if health_up.is_set() else 503,
    }
    with Receivers(answers) as receivers:
        # Attempts enough to outlast the stop: health is still being retried when it comes.
        retries = {"max_attempts": 20, "backoff_base_s": 0.2, "backoff_max_s": 0.5}
        partners_file = partners_with_webhooks(hub_settings, receivers, tmp_path, **retries)
        worker = make_worker(partners_file=partners_file, test_hook_secret=SECRET)
        s = worker.settings
        nhs = AGREED[0]
        with Publisher("council-housing", "northgate", s) as housing:
            housing.publish(draft({"nhs": nhs}, HOUSING, agreement_id=TEST_AGREEMENT_ID))
        with Publisher("northfield-school", "sims", s) as school:
            school.publish(draft({"nhs": nhs}, SCHOOL, agreement_id=TEST_AGREEMENT_ID, minutes=1))
        with Publisher("city-health", "emis", s) as health:
            health.publish(draft({"nhs": nhs}, HEALTH, agreement_id=TEST_AGREEMENT_ID, minutes=2))
        health_receiver = receivers.by_partner["city-health"]
        wait_until(lambda: health_receiver.requests >= 2 and receivers.told("council-housing"))
        worker.stop()
        assert not delivery_caught_up(s)  # health's notification holds its record back
        failed_ids = set(health_receiver.deliveries)
        assert len(failed_ids) == 1 and health_receiver.accepted == []

        health_up.set()
        worker = make_worker(partners_file=partners_file, test_hook_secret=SECRET)
        wait_until(lambda: delivery_caught_up(s), timeout_s=90)
        told = expected(worker, "city-health")
        assert len(told) == 1
        assert receivers.told("city-health") == told
        assert [n["delivery_id"] for n in health_receiver.accepted] == list(failed_ids)
        # Housing's notification of the same record went again; its receiver dropped it.
        housing_receiver = receivers.by_partner["council-housing"]
        assert len(housing_receiver.accepted) == 1 and housing_receiver.duplicates == 1


def group_members(settings: Settings) -> int:
    """How many consumers the webhook group has (one per running worker)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    name = f"{settings.app_id}-webhooks"
    try:
        group = admin.describe_groups([name])[name]
    finally:
        admin.close()
    return len(group["members"]) if group["group_state"] == "Stable" else 0


def test_two_workers_share_the_deliveries_and_add_up_their_figures(
    make_worker: WorkerFactory, hub_settings: Settings, tmp_path: Path
) -> None:
    with Receivers({"council-housing": lambda n: 200}) as receivers:
        partners_file = partners_with_webhooks(hub_settings, receivers, tmp_path)
        first = make_worker(partners_file=partners_file, test_hook_secret=SECRET)
        second = make_worker(
            partners_file=partners_file,
            test_hook_secret=SECRET,
            web_port=free_port(),
            state_dir=first.settings.state_dir.parent / "2",
        )
        s = first.settings
        wait_until(lambda: group_members(s) == 2, describe=lambda: group_members(s))
        for domain, partner in ((HOUSING, "council-housing"), (SCHOOL, "northfield-school")):
            with Publisher(partner, "system", s) as publisher:
                for nhs in AGREED:
                    publisher.publish(draft({"nhs": nhs}, domain, agreement_id=TEST_AGREEMENT_ID))
        with Publisher("city-health", "emis", s) as health:
            for nhs in AGREED:
                health.publish(
                    draft({"nhs": nhs}, HEALTH, agreement_id=TEST_AGREEMENT_ID, minutes=2)
                )
        wait_until(lambda: len(expected(first, "council-housing")) == len(AGREED))
        wait_until(lambda: delivery_caught_up(s), timeout_s=90)

        assert receivers.told("council-housing") == expected(first, "council-housing")
        receiver = receivers.by_partner["council-housing"]
        # Every 2xx counts as delivered, a repeat after a rebalance too; each worker counts
        # its share and either adds up both.
        answered = len(receiver.accepted) + receiver.duplicates
        assert webhook_status(first, "council-housing")["delivered"] == answered
        assert webhook_status(second, "council-housing") == webhook_status(first, "council-housing")
