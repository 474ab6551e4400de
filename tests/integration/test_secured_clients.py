"""The hub's own clients through the secured cluster (issue 14): a worker and partners'
Publishers connect with nothing but ``PLACEHUB_*`` security settings (SASL_SSL,
SCRAM-SHA-512, the local CA), each as its own principal with only its ACLs.

Against the secured three-node cluster of ``tests.integration.secure_cluster``, which has
no plaintext listener: a client that ignored the settings could not connect at all.
"""

from __future__ import annotations

import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAuthorizationFailedError

from connectors import Publisher
from hub import kafka_acls, kafka_clients, onboarding
from hub.config import Settings
from hub.errors import HubError
from hub.kafka_acls import Principal
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, free_port, worker_env
from tests.integration.secure_cluster import (  # noqa: F401 (the fixture)
    SECURE_NODES,
    SecureCluster,
    secure_cluster,
)
from tests.integration.test_onboarding import food_bank_consent, food_bank_visit
from tests.integration.test_sdk_wheel import run_as_partner, sdk_venv
from tests.integration.test_walking_skeleton import (
    consent,
    health_event,
    housing_event,
    person_path,
)

pytestmark = pytest.mark.integration


def _as(cluster: SecureCluster, principal: Principal, **place: Any) -> Settings:
    """Settings for a process of ``place`` logging in as ``principal`` (made here, with its
    ACLs; its password in a 0600 file, as a deployment keeps it)."""
    password = kafka_acls.new_password()
    with cluster.admin() as admin:
        kafka_acls.onboard(admin, principal, password)
    return cluster.settings_for(principal, password, **place)


def _place(
    cluster: SecureCluster, tmp_path: Path, agreements_dir: Path
) -> tuple[Topics, dict[str, Any], Settings]:
    """One test's own hub on the shared cluster: its topics, its settings, and its worker's
    settings (logging in as a worker principal of its own)."""
    run = uuid.uuid4().hex[:8]
    topics = Topics(f"s{run}.")
    place: dict[str, Any] = {
        "topic_prefix": topics.prefix,
        "app_id": f"placehub-s{run}",
        "web_port": free_port(),
        "state_dir": tmp_path / "state",
        "agreements_dir": agreements_dir,
        "replication_factor": SECURE_NODES,  # min.insync.replicas is 2 on the cluster
        "partitions": 2,
    }
    worker = _as(cluster, kafka_acls.worker("1", place["app_id"], topics), **place)
    return topics, place, worker


def test_a_worker_and_partners_publishers_work_through_sasl_ssl(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
    agreements_dir: Path,
) -> None:
    topics, place, hub = _place(secure_cluster, tmp_path, agreements_dir)
    housing = _as(secure_cluster, kafka_acls.partner("council-housing", topics), **place)
    health = _as(secure_cluster, kafka_acls.partner("city-health", topics), **place)
    worker = WorkerProcess(hub, tmp_path / "worker.log", env=worker_env(hub))
    worker.start(timeout_s=180)
    try:
        # The worker declared every topic and registered the subjects: partners create
        # and register nothing (their ACLs do not let them).
        with Publisher("council-housing", "northgate", housing) as publisher:
            publisher.publish_consent(consent())
            publisher.publish(housing_event())
        with Publisher("city-health", "emis", health) as publisher:
            publisher.publish(health_event())

        reply = worker.wait_for(
            person_path(worker),
            lambda r: r.ok and r.json()["event_count"] == 2,
            timeout_s=90,
            token="demo-practitioner-housing",
            expecting="both partners' events in the person's view",
        )
    finally:
        worker.stop()
    assert set(reply.json()["partners"]) == {"council-housing", "city-health"}
    log = (tmp_path / "worker.log").read_text()  # nothing it did was refused on the way
    refusals = ("AuthorizationFailed", "Authorization failed", "Authentication")
    assert [word for word in refusals if word in log] == []


# The food bank's system: the SDK from its own venv, settings only from the environment.
_FOOD_BANK_SCRIPT = f"""
import json
from connectors import ConsentDraft, EventDraft, Publisher
draft = EventDraft.model_validate_json({food_bank_visit().model_dump_json()!r})
consent = ConsentDraft.model_validate_json({food_bank_consent().model_dump_json()!r})
with Publisher("eastside-food-bank", "foodbank-crm") as publisher:
    receipts = [publisher.publish_consent(consent), publisher.publish(draft)]
print(json.dumps({{"published": len(receipts)}}))
"""


def test_a_partner_added_with_partners_add_publishes_as_itself_and_reads_nothing_else(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
    agreements_dir: Path,
) -> None:
    topics, place, hub = _place(secure_cluster, tmp_path, agreements_dir)
    admin_password = secure_cluster.secrets.admin_password
    admin = secure_cluster.settings_for(kafka_acls.admin(), admin_password, **place)
    worker = WorkerProcess(hub, tmp_path / "worker.log", env=worker_env(hub))
    worker.start(timeout_s=180)
    try:
        handover = onboarding.add_partner(
            admin,
            "eastside-food-bank",
            name="Eastside Food Bank",
            sector="charity",
            secrets_dir=tmp_path / "handover",
            wait_s=120,
            progress=lambda _: None,
        )
        assert handover.workers_joined
        assert handover.kafka_user == "partner-eastside-food-bank"
        assert handover.password_file is not None
        assert stat.S_IMODE(handover.password_file.stat().st_mode) == 0o600
        # The partner's IT team has the SDK's wheel and what the hand-over says, no more.
        exports = [
            line.strip().removeprefix("export ").split("=", 1)
            for line in handover.describe().splitlines()
            if line.strip().startswith("export PLACEHUB_")
        ]
        given = {name: value for name, value in exports if name != "PLACEHUB_PLACE_KEY_FILE"}
        assert given["PLACEHUB_SASL_USERNAME"] == "partner-eastside-food-bank"
        result = run_as_partner(
            sdk_venv(tmp_path),
            _FOOD_BANK_SCRIPT,
            tmp_path / "food-bank",
            {**given, "PLACEHUB_TOPIC_PREFIX": topics.prefix, "PLACEHUB_ALLOW_TEST_KEY": "1"},
        )
        assert result["published"] == 2
        food_bank = Settings(
            **{
                **hub.model_dump(),
                "sasl_username": handover.kafka_user,
                "sasl_password_file": handover.password_file,
            }
        )
        ingest_token = handover.token_file.read_text().strip()
        worker.wait_for(
            "/v1/partners/eastside-food-bank/status",
            lambda r: r.ok and r.json()["in_view"] == 1,
            timeout_s=120,
            token=ingest_token,
            expecting="the new partner's event in a view",
        )

        options = kafka_clients.kafka_python_options(food_bank)
        spy = KafkaConsumer(**options, enable_auto_commit=False)
        try:
            hub_events = TopicPartition(topics.events, 0)
            spy.assign([hub_events])
            with pytest.raises(TopicAuthorizationFailedError):
                spy.end_offsets([hub_events])
        finally:
            spy.close()
        forger = KafkaProducer(**kafka_clients.kafka_python_producer_options(food_bank))
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                forger.send(topics.partner("council-housing"), b"forged").get(timeout=30)
        finally:
            forger.close()

        onboarding.remove_partner(admin, "eastside-food-bank")
        quick = food_bank.model_copy(update={"request_timeout_ms": 5_000})  # fails at once
        revoked = Publisher("eastside-food-bank", "foodbank-crm", quick, attempts=1)
        with pytest.raises(HubError):  # its credential is gone
            revoked.publish(food_bank_visit())
        revoked.close()
    finally:
        worker.stop()
