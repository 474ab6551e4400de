"""The secured cluster refuses what the ACL model does not allow, and says so (issue 14).

Against a real three-node secured cluster (``tests.integration.secure_cluster``): a
partner principal publishes to its own topic, and is refused writing another partner's
topic, reading ``hub.events`` and joining the hub's consumer group, while a worker
principal may do the last two (so each refusal is the ACLs' doing, not a broken
cluster); connections without a valid SCRAM login over TLS are refused, and the
controllers take only node certificates. Every refusal is in the nodes' ``security.log``
and counted by ``placehub broker status``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from connectors.simulate import Place as SimulatedPlace
from hub import broker, kafka_acls, kafka_clients
from hub.config import Settings
from hub.kafka_acls import Principal
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, caught_up, ends, free_port, worker_env
from tests.integration.secure_cluster import (  # noqa: F401 (the fixture)
    SECURE_NODES,
    SecureCluster,
    node_dirs,
    secure_cluster,
    wait_for,
)

pytestmark = pytest.mark.integration

APP_ID = "placehub-sectest"


def _name() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


class Place:
    """One test's topics (own prefix) and principals on the secured cluster."""

    def __init__(self, cluster: SecureCluster) -> None:
        self.cluster = cluster
        self.topics = Topics(prefix=f"{_name()}.")
        self.app_id = f"{APP_ID}-{uuid.uuid4().hex[:6]}"
        self.passwords: dict[str, str] = {}

    def onboard(self, principal: Principal) -> Principal:
        password = kafka_acls.new_password()
        with self.cluster.admin() as admin:
            kafka_acls.onboard(admin, principal, password)
        self.passwords[principal.name] = password
        return principal

    def partner(self) -> Principal:
        return self.onboard(kafka_acls.partner(_name(), self.topics))

    def worker(self) -> Principal:
        name = uuid.uuid4().hex[:8]
        return self.onboard(kafka_acls.worker(name, self.app_id, self.topics))

    def create(self, *topics: str) -> None:
        with self.cluster.admin() as admin:
            admin.create_topics([NewTopic(t, 1, SECURE_NODES) for t in topics])

    def options(self, principal: Principal) -> dict[str, object]:
        return self.cluster.options(principal, self.passwords[principal.name])

    def settings(self, principal: Principal) -> Settings:
        """What a process running as ``principal`` is configured with (PLACEHUB_*)."""
        return self.cluster.settings_for(principal, self.passwords[principal.name])

    def producer(self, principal: Principal | None = None) -> KafkaProducer:
        """A producer as ``principal`` (the admin if None), made the way the project's are."""
        if principal is None:
            options = {**self.cluster.options(), **kafka_clients.DURABLE_PRODUCER}
        else:
            options = kafka_clients.kafka_python_producer_options(self.settings(principal))
        return KafkaProducer(max_block_ms=10_000, **options)

    def consumer(self, principal: Principal, **extra: object) -> KafkaConsumer:
        """A consumer as ``principal``, made the way the project's are."""
        return KafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
            **extra,
            **kafka_clients.kafka_python_options(self.settings(principal)),
        )


@pytest.fixture
def place(secure_cluster: SecureCluster) -> Place:  # noqa: F811
    return Place(secure_cluster)


@pytest.fixture
def closing() -> Iterator[list[KafkaProducer | KafkaConsumer | KafkaAdminClient]]:
    clients: list[KafkaProducer | KafkaConsumer | KafkaAdminClient] = []
    yield clients
    for client in clients:
        client.close()


def _denials_for(cluster: SecureCluster, principal: Principal, resource: str = "") -> list[str]:
    """The security.log lines in which ``principal`` was denied (on ``resource``, if given)."""
    found = []
    for folder in node_dirs(cluster):
        for log in folder.glob("security.log*"):
            for line in log.read_text(errors="replace").splitlines():
                if f"Principal = {principal.kafka_principal} is Denied" in line and (
                    f"on resource = {resource} " in line or not resource
                ):
                    found.append(line)
    return found


def _read_all(consumer: KafkaConsumer, partition: TopicPartition) -> list[bytes]:
    """Every value on ``partition`` up to its end offset now."""
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    values: list[bytes] = []

    def caught_up() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(record.value for record in records)
        return bool(consumer.position(partition) >= end)

    wait_for(f"{partition.topic} read to offset {end}", caught_up)
    return values


# --------------------------------------------------------------------------- partners


def test_a_partner_publishes_to_its_own_topic(place: Place, closing: list) -> None:
    partner = place.partner()
    topic = place.topics.partner(partner.name.removeprefix("partner-"))
    place.create(topic)
    producer = place.producer(partner)
    closing.append(producer)
    sent = producer.send(topic, b"event-1").get(timeout=20)
    assert sent.topic == topic and sent.offset == 0
    admin_reader = KafkaConsumer(**place.cluster.options())
    closing.append(admin_reader)
    assert _read_all(admin_reader, TopicPartition(topic, 0)) == [b"event-1"]


def test_a_partner_is_refused_writing_another_partners_topic(place: Place, closing: list) -> None:
    writer, owner = place.partner(), place.partner()
    theirs = place.topics.partner(owner.name.removeprefix("partner-"))
    place.create(theirs)
    producer = place.producer(writer)
    closing.append(producer)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send(theirs, b"forged").get(timeout=20)
    # Nothing landed: the owner's topic is still empty (read as the admin).
    reader = KafkaConsumer(**place.cluster.options())
    closing.append(reader)
    assert _read_all(reader, TopicPartition(theirs, 0)) == []
    # And the owner itself may write there (the refusal is the ACLs', not the topic's).
    own = place.producer(owner)
    closing.append(own)
    assert own.send(theirs, b"genuine").get(timeout=20).offset == 0


def test_a_partner_is_refused_reading_hub_events(place: Place, closing: list) -> None:
    partner, worker = place.partner(), place.worker()
    place.create(place.topics.events)
    admin = place.producer()
    closing.append(admin)
    admin.send(place.topics.events, b"a person's event").get(timeout=20)
    hub_events = TopicPartition(place.topics.events, 0)

    spy = place.consumer(partner)
    closing.append(spy)
    spy.assign([hub_events])
    with pytest.raises(TopicAuthorizationFailedError):
        spy.end_offsets([hub_events])
    with pytest.raises(TopicAuthorizationFailedError):
        spy.beginning_offsets([hub_events])
    # The worker reads it: the record is there to be read.
    reader = place.consumer(worker)
    closing.append(reader)
    assert _read_all(reader, hub_events) == [b"a person's event"]


def test_a_partner_is_refused_joining_the_hubs_consumer_group(place: Place, closing: list) -> None:
    partner, worker = place.partner(), place.worker()
    place.create(place.topics.schemas)
    # _schemas is a topic the partner may read: only the group is refused.
    intruder = place.consumer(partner, group_id=place.app_id)
    closing.append(intruder)
    intruder.subscribe([place.topics.schemas])
    with pytest.raises(GroupAuthorizationFailedError):
        for _ in range(50):
            intruder.poll(timeout_ms=200)
    member = place.consumer(worker, group_id=place.app_id)
    closing.append(member)
    member.subscribe([place.topics.schemas])
    wait_for(
        "the worker to join its group",
        lambda: bool(member.poll(timeout_ms=100) or member.assignment()),
    )


def _login_refused(cluster: SecureCluster, options: dict[str, object]) -> bool:
    """True if an admin client made with ``options`` cannot get in (node 1 only)."""
    first = cluster.bootstrap_servers.split(",")[:1]
    try:
        client = KafkaAdminClient(
            bootstrap_timeout_ms=3000,
            request_timeout_ms=3000,
            **{**options, "bootstrap_servers": first},
        )
    except (KafkaConnectionError, KafkaTimeoutError):
        return True
    client.close()
    return False


def test_a_revoked_partner_can_no_longer_log_in(place: Place) -> None:
    partner = place.partner()
    assert not _login_refused(place.cluster, place.options(partner))
    with place.cluster.admin() as admin:
        assert kafka_acls.apply(admin, partner) == (0, 0)  # applied once already
        removed = kafka_acls.revoke(admin, partner)
        assert kafka_acls.revoke(admin, partner) == 0  # no ACL of it is left
    assert removed == len(kafka_acls.grants_for(partner))
    wait_for(
        "the revoked partner's login to be refused",
        lambda: _login_refused(place.cluster, place.options(partner)),
    )


# --------------------------------------------------------------------------- connections


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="plaintext"),
        pytest.param({"security_protocol": "SSL"}, id="tls-without-login"),
        pytest.param({"sasl_plain_password": "not-the-password"}, id="wrong-password"),
        pytest.param({"sasl_plain_username": "nobody"}, id="unknown-user"),
    ],
)
def test_connections_without_a_valid_login_are_refused(
    secure_cluster: SecureCluster,  # noqa: F811
    options: dict[str, str],
) -> None:
    before = secure_cluster.refusals().failed_authentications
    settings: dict[str, object] = {**secure_cluster.options(), **options}
    if not options:  # plaintext: no TLS, no login
        settings = {"bootstrap_servers": settings["bootstrap_servers"]}
    elif options.get("security_protocol") == "SSL":
        for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            settings.pop(key)
    assert _login_refused(secure_cluster, settings)
    wait_for(
        "a failed authentication in the nodes' security.log",
        lambda: secure_cluster.refusals().failed_authentications > before,
    )


def _tls_to_controller(cluster: SecureCluster, client_cert: tuple[Path, Path] | None) -> bytes:
    """Handshake with node 1's controller listener and read; what came back (b'' if closed)."""
    context = ssl.create_default_context(cafile=str(cluster.secrets.files.ca_cert))
    if client_cert is not None:
        context.load_cert_chain(*map(str, client_cert))
    port = cluster.settings.controller_port
    with (
        socket.create_connection((broker.HOST, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=broker.HOST) as tls,
    ):
        # ApiVersions v0: size 10, api key 18, version 0, correlation id 1, no client id.
        tls.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff")
        return tls.recv(64)


def _refused_without_certificate(cluster: SecureCluster) -> bool:
    """True if node 1's controller listener turns away a TLS client with no certificate."""
    try:
        answer = _tls_to_controller(cluster, None)
    except (ssl.SSLError, ConnectionError):
        return True
    return answer == b""


def _node_cert(cluster: SecureCluster, folder: Path) -> tuple[Path, Path]:
    """Node 1's certificate and key as PEM files (a node's own credential)."""
    files = cluster.secrets.files
    key, cert, _ = pkcs12.load_key_and_certificates(
        files.node_keystore(1).read_bytes(), cluster.secrets.keystore_password.encode()
    )
    assert key is not None and cert is not None
    cert_file, key_file = folder / "node.crt", folder / "node.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_the_controllers_take_only_node_certificates(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    assert _refused_without_certificate(secure_cluster)
    answered = _tls_to_controller(secure_cluster, _node_cert(secure_cluster, tmp_path))
    assert len(answered) > 4  # a node certificate gets an ApiVersions answer


# --------------------------------------------------------------------------- visibility


def test_a_refusal_is_in_the_security_log_and_in_broker_status(place: Place, closing: list) -> None:
    writer, owner = place.partner(), place.partner()
    theirs = place.topics.partner(owner.name.removeprefix("partner-"))
    place.create(theirs)
    before = broker.status(place.cluster.settings)
    assert before.secure and before.answering and before.denied is not None
    producer = place.producer(writer)
    closing.append(producer)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send(theirs, b"forged").get(timeout=20)
    wait_for(
        "the denial in security.log",
        lambda: bool(_denials_for(place.cluster, writer, f"Topic:LITERAL:{theirs}")),
    )
    after = broker.status(place.cluster.settings)
    assert after.denied is not None and after.denied > before.denied
    # The CLI says the same, as JSON, from the cluster's own folder.
    env = {
        **os.environ,
        "PLACEHUB_BROKER_DIR": str(place.cluster.settings.broker_dir),
        "PLACEHUB_BROKER_PORT": str(place.cluster.settings.broker_port),
        "PLACEHUB_CONTROLLER_PORT": str(place.cluster.settings.controller_port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "broker", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reported = json.loads(done.stdout)
    assert reported["secure"] is True
    assert reported["denied"] >= after.denied


# --------------------------------------------------------------------------- workers


def test_a_worker_runs_the_pipeline_on_its_own_grants(
    place: Place, tmp_path: Path, agreements_dir: Path
) -> None:
    """A worker whose only rights are its grants creates its topics, joins its group, reads
    the partners' topics and writes hub.events, with no refusal: the workers' ACL model
    (which deploy/ mirrors) is enough for the pipeline."""
    principal = place.worker()
    hub = {
        "topic_prefix": place.topics.prefix,
        "app_id": place.app_id,
        "replication_factor": SECURE_NODES,  # min.insync.replicas is 2 on this cluster
    }
    settings = place.settings(principal).model_copy(
        update={
            **hub,
            "web_port": free_port(),
            "state_dir": tmp_path / "state",
            "agreements_dir": agreements_dir,
        }
    )
    env = worker_env(settings, {"replication_factor": SECURE_NODES})
    worker = WorkerProcess(settings, tmp_path / "worker.log", env=env)
    # The simulated partners publish as the admin: the SDK still creates topics it writes.
    admin = Settings(**{**place.cluster.settings.model_dump(), **hub, **admin_security(place)})
    try:
        worker.start(timeout_s=120)
        published = SimulatedPlace(seed=7, people=20).publish(admin, 60)
        partner_topics = [place.topics.partner(partner) for partner in published]
        wait_for(
            "the worker to finish every partner topic",
            lambda: all(caught_up(admin, topic) for topic in partner_topics),
            timeout_s=60,
        )
    finally:
        worker.stop()
    assert sum(ends(admin, place.topics.events).values()) > 0
    assert _denials_for(place.cluster, principal) == []


def admin_security(place: Place) -> dict[str, object]:
    """The admin's PLACEHUB_* security settings (as ``placehub broker env`` prints them)."""
    files = place.cluster.secrets.files
    return {
        "security_protocol": "SASL_SSL",
        "sasl_username": "admin",
        "sasl_password_file": files.password_file("admin"),
        "ssl_cafile": files.ca_cert,
    }
