"""hub.broker without a broker: rendering, port and tool checks, pid bookkeeping."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from hub import broker, broker_security, broker_setup
from hub.broker import BrokerStatus, NodeLayout
from hub.config import Settings
from hub.errors import ConfigError, SetupError


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "broker_dir": tmp_path / "broker",
        "jar_cache_dir": tmp_path / "jars",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other process (this test) is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_jars(tmp_path: Path) -> Path:
    libs = tmp_path / "jars" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    return libs


# ----------------------------------------------------------------------- server.properties


def test_single_node_properties_follow_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_port=19500, controller_port=19501, partitions=6)
    [node] = broker.node_layout(settings)
    props = _props(broker.render_server_properties(settings, node))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19501"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19500,CONTROLLER://127.0.0.1:19501"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19500"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "broker" / "node-1" / "data")
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "false"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert int(props["log.segment.bytes"]) <= 64 * 1024 * 1024


def test_properties_bind_loopback_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for node in broker.node_layout(settings, 3):
        props = _props(broker.render_server_properties(settings, node, 3))
        for key in ("listeners", "advertised.listeners", "controller.quorum.voters"):
            hosts = {
                part.split("//")[-1].split("@")[-1].split(":")[0] for part in props[key].split(",")
            }
            assert hosts == {"127.0.0.1"}, (key, props[key])


def test_three_node_layout_and_properties(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_port=19092, controller_port=19093)
    layout = broker.node_layout(settings, 3)

    assert [(n.node_id, n.broker_port, n.controller_port) for n in layout] == [
        (1, 19092, 19093),
        (2, 19192, 19193),
        (3, 19292, 19293),
    ]
    assert len({n.dir for n in layout}) == 3
    props = _props(broker.render_server_properties(settings, layout[1], 3))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert props["log.dirs"] == str(tmp_path / "broker" / "node-2" / "data")
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"


@pytest.mark.parametrize("nodes", [0, broker.MAX_NODES + 1])
def test_unsupported_node_counts_are_config_errors(tmp_path: Path, nodes: int) -> None:
    with pytest.raises(ConfigError, match="--nodes"):
        broker.node_layout(_settings(tmp_path), nodes)


def test_colliding_node_ports_are_rejected_before_anything_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_port=20000, controller_port=20100)
    with pytest.raises(ConfigError, match="20100 would be used twice"):
        broker.start(settings, nodes=3, progress=lambda _: None)
    assert not settings.broker_dir.exists()


def test_ports_past_65535_are_rejected(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_port=65400, controller_port=65401)
    with pytest.raises(ConfigError, match="65600"):
        broker.start(settings, nodes=3, progress=lambda _: None)


def test_cluster_id_looks_like_kafkas() -> None:
    import base64

    ids = {broker.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_ephemeral_port_warning(tmp_path: Path) -> None:
    span = broker._ephemeral_range()
    assert span is not None, "Linux exposes /proc/sys/net/ipv4/ip_local_port_range"
    low_ports = _settings(tmp_path, broker_port=span[0] - 200, controller_port=span[0] - 199)
    assert broker.ephemeral_port_warning(broker.node_layout(low_ports)) is None
    inside = _settings(tmp_path, broker_port=span[0] + 10, controller_port=span[0] - 199)
    warning = broker.ephemeral_port_warning(broker.node_layout(inside))
    assert warning is not None and str(span[0] + 10) in warning


# ----------------------------------------------------------------------- ports and tools


def test_port_in_use_is_a_one_line_setup_error(listening_port: int) -> None:
    with pytest.raises(SetupError) as caught:
        broker.check_port_free(listening_port)
    message = str(caught.value)
    assert message == (
        f"port {listening_port} on 127.0.0.1 is already in use by another process; "
        f"stop it or set PLACEHUB_BROKER_PORT"
    )
    assert "\n" not in message


def test_free_port_passes() -> None:
    broker.check_port_free(_free_port())


def test_start_refuses_a_taken_port_before_touching_disk(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_setup, "require_java", lambda: "/usr/bin/java")
    settings = _settings(tmp_path, broker_port=_free_port(), controller_port=listening_port)
    with pytest.raises(SetupError, match="stop it or set PLACEHUB_CONTROLLER_PORT"):
        broker.start(settings, progress=lambda _: None)
    assert not list(settings.broker_dir.glob("node-*"))
    assert not (settings.broker_dir / "cluster.json").exists()
    assert not settings.jar_cache_dir.exists()


def test_missing_java_is_a_one_line_setup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    settings = _settings(tmp_path, broker_port=_free_port(), controller_port=_free_port())
    with pytest.raises(SetupError) as caught:
        broker.start(settings, progress=lambda _: None)
    assert str(caught.value) == (
        "java not found on PATH: install OpenJDK 17+ (apt-get install openjdk-17-jre-headless)"
    )


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SetupError, match="Java 11; Kafka 4 needs Java 17"):
        broker_setup.require_java()


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("something else", None),
    ],
)
def test_java_version_parsing(output: str, major: int | None) -> None:
    assert broker_setup._java_major(output) == major


def test_missing_mvn_only_matters_when_jars_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    settings = _settings(tmp_path)
    with pytest.raises(SetupError, match=r"^mvn not found on PATH: .*install Maven"):
        broker_setup.fetch_jars(settings, progress=lambda _: None)
    assert not (settings.jar_cache_dir / "libs").exists()

    libs = settings.jar_cache_dir / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert broker_setup.fetch_jars(settings, progress=lambda _: None) == libs


def test_failed_fetch_leaves_no_libs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mvn"
    fake.write_text("#!/bin/sh\necho '[ERROR] Could not resolve dependencies (offline)'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    settings = _settings(tmp_path)
    with pytest.raises(SetupError, match=r"exit 1\): \[ERROR\] Could not resolve dependencies"):
        broker_setup.fetch_jars(settings, progress=lambda _: None)
    assert list(settings.jar_cache_dir.iterdir()) == []


# ----------------------------------------------------------------------- pid bookkeeping


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _node(settings: Settings) -> NodeLayout:
    node = broker.node_layout(settings)[0]
    node.dir.mkdir(parents=True, exist_ok=True)
    return node


@pytest.mark.parametrize("content", ["dead", "self", "garbage"])
def test_stale_pid_file_is_not_running_and_stop_cleans_it(tmp_path: Path, content: str) -> None:
    settings = _settings(tmp_path)
    node = _node(settings)
    pid_text = {"dead": str(_dead_pid()), "self": str(os.getpid()), "garbage": "not a pid"}[content]
    node.pid_file.write_text(pid_text + "\n")

    current = broker.status(settings)
    assert not current.running
    assert not current.answering
    assert current.pid is None
    assert node.pid_file.exists()  # status only looks

    stopped = broker.stop(settings, timeout_s=1.0)  # must not signal this test process
    assert not stopped.running
    assert not node.pid_file.exists()


def test_a_live_process_that_is_not_our_broker_is_never_ours(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = _node(settings)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "kafka.Kafka"])
    try:
        node.pid_file.write_text(f"{other.pid}\n")
        assert not broker.status(settings).running
        broker.stop(settings, timeout_s=1.0)
        assert other.poll() is None  # still alive: it was not started for this broker_dir
    finally:
        other.kill()
        other.wait()


def test_start_and_stop_on_one_broker_dir_take_turns(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.broker_dir.mkdir(parents=True)
    with (settings.broker_dir / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as if another `placehub broker start` were running
        stopper = threading.Thread(target=broker.stop, args=(settings,))
        stopper.start()
        stopper.join(0.5)
        assert stopper.is_alive()  # waits its turn
        fcntl.flock(held, fcntl.LOCK_UN)
    stopper.join(5)
    assert not stopper.is_alive()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    node = _node(settings)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)",
            "kafka.Kafka",  # looks like our broker for this node
            str(node.properties_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
        node.pid_file.write_text(f"{stubborn.pid}\n")
        assert broker.status(settings).pid == stubborn.pid
        assert not broker.stop(settings, timeout_s=0.5).running
        assert stubborn.wait(5) == -9
        assert not node.pid_file.exists()
    finally:
        stubborn.kill()
        stubborn.wait()


def test_relative_broker_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(broker_dir=Path("rel/broker"))
    [node] = broker.node_layout(settings)
    assert node.dir == tmp_path / "rel" / "broker" / "node-1"
    props = _props(broker.render_server_properties(settings, node))
    assert props["log.dirs"] == str(tmp_path / "rel" / "broker" / "node-1" / "data")


def test_stop_when_nothing_was_ever_started_is_harmless(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_port=19092)
    result = broker.stop(settings)
    assert result == BrokerStatus(
        running=False,
        answering=False,
        pid=None,
        bootstrap_servers="127.0.0.1:19092",
        log_file=settings.broker_dir / "node-1" / "broker.log",
    )


def _formatted_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: int) -> Settings:
    """Settings whose broker dir already holds a formatted ``nodes``-node plain cluster."""
    monkeypatch.setattr(broker_setup, "require_java", lambda: "/usr/bin/java")
    settings = _settings(tmp_path, broker_port=_free_port(), controller_port=_free_port())
    data = settings.broker_dir / "node-1" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    (settings.broker_dir / "cluster.json").write_text(
        json.dumps({"cluster_id": "abc", "nodes": nodes, "bootstrap_servers": "x"})
    )
    return settings


def test_switching_node_count_on_existing_data_is_refused(
    tmp_path: Path, fake_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _formatted_cluster(tmp_path, monkeypatch, nodes=3)
    with pytest.raises(ConfigError, match="holds a 3-node broker's data"):
        broker.start(settings, nodes=1, progress=lambda _: None)


# ----------------------------------------------------------------------- messages


def test_last_error_prefers_the_exception_under_the_error_line() -> None:
    lines = [
        "[2025-01-01 00:00:00,000] INFO starting (kafka.Kafka$)",
        "[2025-01-01 00:00:01,000] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)",
        "java.lang.RuntimeException: Stored node id 5 doesn't match previous node id 1",
        "\tat org.apache.kafka.metadata.properties.MetaPropertiesEnsemble.verify(X.java:1)",
    ]
    assert broker_setup.last_error(lines) == (
        "java.lang.RuntimeException: Stored node id 5 doesn't match previous node id 1"
    )
    fatal = "Exiting Kafka due to fatal exception (kafka.Kafka$)"
    assert broker_setup.last_error(lines[:2]) == fatal
    assert broker_setup.last_error(["[x] INFO all good"]) is None


def test_startup_failure_names_the_log_and_only_the_new_error(tmp_path: Path) -> None:
    node = _node(_settings(tmp_path))
    node.log_file.write_text("[t] ERROR old failure from last week (kafka.Kafka$)\n")
    offset = node.log_file.stat().st_size
    with node.log_file.open("a") as log:
        log.write("[t] INFO starting\n[t] ERROR Fatal error during broker startup (x)\n")
    message = broker._startup_failure(node, offset, 0)
    assert message == (
        f"broker exited during start-up; see {node.log_file} "
        f"(last error: Fatal error during broker startup (x))"
    )
    assert "\n" not in message


def test_describe_is_one_line_for_each_state(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    up = BrokerStatus(True, True, 42, "127.0.0.1:19092", log, pids=(42,))
    wedged = BrokerStatus(True, False, 42, "127.0.0.1:19092", log, pids=(42,))
    down = BrokerStatus(False, False, None, "127.0.0.1:19092", log)
    partial = BrokerStatus(True, True, 7, "a,b,c", log, nodes=3, pids=(7, 9))
    down3 = BrokerStatus(False, False, None, "a,b,c", log, nodes=3)

    assert up.describe() == f"broker running (pid 42), answering on 127.0.0.1:19092; log: {log}"
    assert "not answering" in wedged.describe() and str(log) in wedged.describe()
    assert down.describe().startswith("broker not running")
    assert "only 2 of 3 nodes: pids 7, 9" in partial.describe()
    assert "`placehub broker start --nodes 3`" in down3.describe()
    for state in (up, wedged, down, partial, down3):
        assert "\n" not in state.describe()


# ----------------------------------------------------------------------- the secured cluster


@pytest.fixture
def secrets(tmp_path: Path) -> broker_security.BrokerSecrets:
    files = broker_security.SecurityFiles(tmp_path / "broker" / "security")
    return broker_security.ensure_secrets(files, [1, 2, 3])


def test_secure_properties_replace_every_plain_listener(
    tmp_path: Path, secrets: broker_security.BrokerSecrets
) -> None:
    settings = _settings(tmp_path)
    node = broker.node_layout(settings, 3)[1]
    props = _props(broker.render_server_properties(settings, node, 3, secrets))
    assert props["listeners"] == "CLIENT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:19192"
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SSL"
    assert props["inter.broker.listener.name"] == "CLIENT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "PLAINTEXT" not in "".join(props.values())
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert f'username="broker" password="{secrets.broker_password}";' in jaas
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert "ssl.client.auth" not in props  # the client listener asks for no certificate
    assert props["ssl.keystore.location"] == str(secrets.files.node_keystore(2))
    assert props["ssl.truststore.location"] == str(secrets.files.ca_cert)
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:broker"
    # The plain settings stay: replication, no auto-created topics.
    assert props["auto.create.topics.enable"] == "false"
    assert props["min.insync.replicas"] == "2"


def test_node_certificates_map_to_the_broker_principal_and_nothing_else(
    tmp_path: Path, secrets: broker_security.BrokerSecrets
) -> None:
    settings = _settings(tmp_path)
    props = _props(broker.render_server_properties(settings, _node(settings), 1, secrets))
    rule, default = props["ssl.principal.mapping.rules"].split(",")
    assert default == "DEFAULT"
    pattern, replacement = rule.removeprefix("RULE:").split("/")[:2]
    assert replacement == "broker"
    for node_id in (1, 2, 3):
        key, cert, chain = pkcs12.load_key_and_certificates(
            secrets.files.node_keystore(node_id).read_bytes(), secrets.keystore_password.encode()
        )
        assert key is not None and cert is not None
        subject = cert.subject.rfc4514_string()
        assert re.fullmatch(pattern.strip("^$"), subject), subject
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
        ca = x509.load_pem_x509_certificate(secrets.files.ca_cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert [c.subject for c in chain] == [ca.subject]
    for other in ("CN=placehub-broker-x", "CN=admin", "CN=placehub-broker-1,O=elsewhere"):
        assert not re.fullmatch(pattern.strip("^$"), other)


def test_secrets_are_made_once_and_only_their_owner_reads_them(
    secrets: broker_security.BrokerSecrets,
) -> None:
    files = secrets.files
    ca_before = files.ca_cert.read_bytes()
    again = broker_security.ensure_secrets(files, [1, 2, 3])
    assert again == secrets
    assert files.ca_cert.read_bytes() == ca_before
    assert len({secrets.admin_password, secrets.broker_password}) == 2
    private = [
        files.password_file("admin"),
        files.password_file("broker"),
        files.keystore_password,
        files.dir / "ca.key",
        *(files.node_keystore(i) for i in (1, 2, 3)),
    ]
    for path in private:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert files.dir.stat().st_mode & 0o777 == 0o700


def test_the_admin_and_broker_users_are_put_in_at_format_time(
    secrets: broker_security.BrokerSecrets,
) -> None:
    args = broker_security.storage_format_args(secrets)
    assert args[0::2] == ["--add-scram", "--add-scram"]
    admin, node = args[1::2]
    assert admin == (
        f"SCRAM-SHA-512=[name=admin,password={secrets.admin_password},iterations=8192]"
    )
    assert node.startswith("SCRAM-SHA-512=[name=broker,")


def test_clients_replicate_topics_enough_for_the_brokers_min_insync_replicas(
    tmp_path: Path,
) -> None:
    """What ``placehub broker env`` gives clients: a topic they make with fewer replicas
    than ``min.insync.replicas`` would take no ``acks=all`` write."""
    settings = _settings(tmp_path)
    for nodes in range(1, broker.MAX_NODES + 1):
        node = broker.node_layout(settings, nodes)[0]
        props = _props(broker.render_server_properties(settings, node, nodes))
        assert broker.replication_factor(nodes) == int(props["default.replication.factor"])
        assert broker.replication_factor(nodes) >= int(props["min.insync.replicas"])
    # Issue 14: three replicas on the three-node cluster (min.insync.replicas 2), one on
    # the one-node demo.
    assert [broker.replication_factor(n) for n in (1, 3)] == [1, 3]


def test_the_admin_env_names_files_never_a_password(
    secrets: broker_security.BrokerSecrets,
) -> None:
    text = broker_security.admin_env(secrets.files, "127.0.0.1:1,127.0.0.1:2", 3)
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env == {
        "PLACEHUB_BOOTSTRAP_SERVERS": "127.0.0.1:1,127.0.0.1:2",
        "PLACEHUB_REPLICATION_FACTOR": "3",
        "PLACEHUB_SECURITY_PROTOCOL": "SASL_SSL",
        "PLACEHUB_SASL_MECHANISM": "SCRAM-SHA-512",
        "PLACEHUB_SASL_USERNAME": "admin",
        "PLACEHUB_SASL_PASSWORD_FILE": str(secrets.files.password_file("admin")),
        "PLACEHUB_SSL_CAFILE": str(secrets.files.ca_cert),
    }
    assert secrets.admin_password not in text
    # And the hub's own settings accept it whole.
    settings = Settings(**{k.removeprefix("PLACEHUB_").lower(): v for k, v in env.items()})
    assert settings.sasl_username == "admin"
    assert settings.replication_factor == 3


def test_refusals_are_counted_from_every_nodes_security_log(tmp_path: Path) -> None:
    one, two = tmp_path / "node-1", tmp_path / "node-2"
    one.mkdir()
    two.mkdir()
    (one / "security.log").write_text(
        "[t] INFO Principal = User:partner-a is Denied operation = WRITE from host = "
        "127.0.0.1 on resource = Topic:LITERAL:partner.b.events for request = Produce\n"
        "[t] INFO [SocketServer listenerType=BROKER, nodeId=1] Failed authentication with "
        "/127.0.0.1 (channelId=x) (SSL handshake failed)\n"
        "[t] WARN Unexpected error from /127.0.0.1; closing connection\n"
        "org.apache.kafka.common.errors.InvalidRequestException: Unexpected Kafka request "
        "of type METADATA during SASL handshake.\n"
    )
    (two / "security.log.1").write_text(
        "[t] INFO Principal = User:partner-a is Denied operation = READ from host = "
        "127.0.0.1 on resource = Group:LITERAL:placehub for request = JoinGroup\n"
    )
    events = broker_security.security_events([one, two, tmp_path / "node-3"])
    assert events == broker_security.SecurityEvents(denied=2, failed_authentications=2)


def test_a_secured_node_file_is_private_and_the_cluster_is_recorded_secure(
    tmp_path: Path, fake_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    formatted: list[list[str]] = []
    monkeypatch.setattr(
        broker_setup, "format_storage", lambda *args: formatted.append(list(args[-1]))
    )
    settings = _settings(tmp_path)
    layout = broker.node_layout(settings, 1)
    broker._prepare(settings, layout, layout, "java", fake_jars, lambda _: None, True)
    assert layout[0].properties_file.stat().st_mode & 0o777 == 0o600
    record = json.loads((settings.broker_dir / "cluster.json").read_text())
    assert record["secure"] is True
    assert formatted and formatted[0][0] == "--add-scram"
    assert "PLACEHUB_SASL_USERNAME=admin" in broker.admin_env(settings)
    # The one-node cluster's topics get one replica (min.insync.replicas is 1 there).
    assert "PLACEHUB_REPLICATION_FACTOR=1\n" in broker.admin_env(settings)
    assert (settings.broker_dir / "security" / "admin.env").read_text() == broker.admin_env(
        settings
    )


def test_plain_and_secured_data_are_never_mixed(
    tmp_path: Path, fake_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _formatted_cluster(tmp_path, monkeypatch, nodes=1)
    with pytest.raises(ConfigError, match="holds a plain cluster's data"):
        broker.start(settings, secure=True, progress=lambda _: None)
    with pytest.raises(ConfigError, match="no secured cluster"):
        broker.admin_env(settings)


def test_a_secured_status_says_so_and_counts_refusals(tmp_path: Path) -> None:
    log = tmp_path / "node-1" / "broker.log"
    up = BrokerStatus(
        True,
        True,
        42,
        "127.0.0.1:19092",
        log,
        pids=(42,),
        secure=True,
        denied=3,
        failed_authentications=1,
    )
    down = BrokerStatus(False, False, None, "a,b,c", log, nodes=3, secure=True)
    assert up.describe().startswith("secured broker running (pid 42)")
    assert "3 ACL denial(s), 1 failed authentication(s)" in up.describe()
    assert f"{tmp_path}/node-*/security.log" in up.describe()
    assert "`placehub broker start --nodes 3 --secure`" in down.describe()
