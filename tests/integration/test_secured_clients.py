"""The hub's own clients through the secured cluster (issue 14): a worker and partners'
Publishers connect with nothing but ``PLACEHUB_*`` security settings (SASL_SSL,
SCRAM-SHA-512, the local CA), each as its own principal with only its ACLs.

Against the secured three-node cluster of ``tests.integration.secure_cluster``, which has
no plaintext listener: a client that ignored the settings could not connect at all.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors import Publisher
from hub import contracts, kafka_acls
from hub.config import Settings
from hub.kafka_acls import ADMIN, Principal
from hub.registry import SchemaRegistry
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


def _client(cluster: SecureCluster, settings: Settings, **login: object) -> Settings:
    """``settings`` for a client of the secured cluster logging in with ``login``."""
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "ssl_cafile": cluster.secrets.files.ca_cert,
            **login,
        }
    )


def _as(cluster: SecureCluster, settings: Settings, principal: Principal, folder: Path) -> Settings:
    """``settings`` for a client logging in as ``principal`` (made here, with its ACLs),
    its password in a file as a deployment keeps it."""
    password = kafka_acls.new_password()
    with cluster.admin() as admin:
        kafka_acls.onboard(admin, principal, password)
    password_file = folder / f"{principal.name}.password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    return _client(
        cluster, settings, sasl_username=principal.name, sasl_password_file=password_file
    )


def test_a_worker_and_partners_publishers_work_through_sasl_ssl(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
    agreements_dir: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = Topics(f"s{run}.")
    app_id = f"placehub-s{run}"
    place = secure_cluster.settings.model_copy(
        update={
            "topic_prefix": topics.prefix,
            "app_id": app_id,
            "web_port": free_port(),
            "state_dir": tmp_path / "state",
            "agreements_dir": agreements_dir,
            "replication_factor": SECURE_NODES,  # min.insync.replicas is 2 on the cluster
            "partitions": 2,
            "broker_secure": False,  # that one is the broker's own setting, not a client's
        }
    )
    admin = _client(
        secure_cluster,
        place,
        sasl_username=ADMIN,
        sasl_password=SecretStr(secure_cluster.secrets.admin_password),
    )
    registry = SchemaRegistry(admin)  # `placehub schemas register`, as the admin
    try:
        contracts.register(registry, admin)
    finally:
        registry.close()
    hub = _as(secure_cluster, place, kafka_acls.worker("1", app_id, topics), tmp_path)
    housing = _as(secure_cluster, place, kafka_acls.partner("council-housing", topics), tmp_path)
    health = _as(secure_cluster, place, kafka_acls.partner("city-health", topics), tmp_path)
    worker = WorkerProcess(hub, tmp_path / "worker.log", env=worker_env(hub))
    worker.start(timeout_s=180)
    try:
        # The admin registered the contracts and the worker declared every topic:
        # partners create and register nothing (their ACLs do not let them).
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
    log = (tmp_path / "worker.log").read_text()
    assert "Authorization failed" not in log and "SaslAuthenticationFailed" not in log
