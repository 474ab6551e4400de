"""The hub's own clients through the secured cluster (issue 14): a worker and partners'
Publishers connect with nothing but ``PLACEHUB_*`` security settings (SASL_SSL,
SCRAM-SHA-512, the local CA), each as its own principal with only its ACLs.

Against the secured three-node cluster of ``tests.integration.secure_cluster``, which has
no plaintext listener: a client that ignored the settings could not connect at all.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors import Publisher
from hub import kafka_acls
from hub.config import Settings
from hub.kafka_acls import Principal
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, free_port, worker_env
from tests.integration.secure_cluster import (  # noqa: F401 (the fixture)
    SECURE_NODES,
    SecureCluster,
    secure_cluster,
)
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


def test_a_worker_and_partners_publishers_work_through_sasl_ssl(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
    agreements_dir: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = Topics(f"s{run}.")
    app_id = f"placehub-s{run}"
    place: dict[str, Any] = {
        "topic_prefix": topics.prefix,
        "app_id": app_id,
        "web_port": free_port(),
        "state_dir": tmp_path / "state",
        "agreements_dir": agreements_dir,
        "replication_factor": SECURE_NODES,  # min.insync.replicas is 2 on the cluster
        "partitions": 2,
    }
    hub = _as(secure_cluster, kafka_acls.worker("1", app_id, topics), **place)
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
