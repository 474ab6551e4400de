"""A secured local cluster for broker tests of Kafka security, on its own ports and folder.

Three nodes (``placehub broker start --nodes 3 --secure``) on 28092/28192/28292 with
controllers one port above, under a temporary broker folder: the plain broker on 19092 and
the lifecycle tests' brokers (29092, 27092..) are never touched. Started once per test
module that uses the ``secure_cluster`` fixture, stopped at the module's end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from hub import broker, broker_security
from hub.broker_security import BrokerSecrets, SecurityFiles
from hub.config import Settings
from hub.kafka_acls import Principal

__all__ = ["SECURE_NODES", "SECURE_PORT", "SecureCluster", "secure_cluster", "wait_for"]

SECURE_PORT = 28092
SECURE_NODES = 3


@dataclass(frozen=True)
class SecureCluster:
    """The running secured cluster: its settings and the admin's credentials."""

    settings: Settings
    secrets: BrokerSecrets

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client listener."""
        return self.settings.bootstrap_servers

    def settings_for(self, principal: Principal, password: str, **overrides: Any) -> Settings:
        """Settings that connect as ``principal`` (``PLACEHUB_SECURITY_PROTOCOL=SASL_SSL``,
        its password in a 0600 file), as a worker or connector process would be given."""
        files = self.secrets.files
        password_file = broker_security.store_password(
            files.password_file(principal.name), password
        )
        values: dict[str, Any] = {
            **self.settings.model_dump(),
            "security_protocol": "SASL_SSL",
            "sasl_username": principal.name,
            "sasl_password_file": password_file,
            "ssl_cafile": files.ca_cert,
            **overrides,
        }
        return Settings(**values)

    def options(self, principal: Principal | None = None, password: str = "") -> dict[str, Any]:
        """kafka-python keyword arguments: the admin's, or ``principal``'s with ``password``."""
        options = broker_security.client_options(self.secrets)
        if principal is not None:
            options.update(sasl_plain_username=principal.name, sasl_plain_password=password)
        return {"bootstrap_servers": self.bootstrap_servers.split(","), **options}

    @contextlib.contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        """An admin client (a super user), closed after use."""
        client = KafkaAdminClient(client_id="secure-test-admin", **self.options())
        try:
            yield client
        finally:
            client.close()

    def refusals(self) -> broker_security.SecurityEvents:
        """What the nodes' security logs hold now."""
        return broker_security.security_events(
            node.dir for node in broker.node_layout(self.settings, SECURE_NODES)
        )


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Return once ``check()`` is true; raise naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    """A secured three-node cluster for this module (started here, stopped at its end)."""
    folder = tmp_path_factory.mktemp("secure-broker")
    layout_ports = [SECURE_PORT + broker.NODE_PORT_STEP * i for i in range(SECURE_NODES)]
    settings = Settings(
        broker_dir=folder,
        broker_port=SECURE_PORT,
        controller_port=SECURE_PORT + 1,
        bootstrap_servers=",".join(f"{broker.HOST}:{port}" for port in layout_ports),
        broker_heap_mb=256,
        broker_secure=True,
    )
    try:
        broker.start(settings, nodes=SECURE_NODES, timeout_s=120, progress=lambda _: None)
        secrets = broker_security.read_secrets(SecurityFiles(folder / "security"))
        yield SecureCluster(settings, secrets)
    finally:
        broker.stop(settings)


def node_dirs(cluster: SecureCluster) -> list[Path]:
    """The nodes' folders (their logs, data and server.properties)."""
    return [node.dir for node in broker.node_layout(cluster.settings, SECURE_NODES)]
