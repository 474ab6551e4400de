"""Run a local Apache Kafka broker (KRaft mode, no ZooKeeper) from Maven Central jars.

Why this exists: placehub needs a real Kafka for development, the integration tests and a
small single-machine place, and there is no Docker to run one. Kafka 4 needs nothing but a
JVM, so ``placehub broker start`` fetches the jars pinned in ``deploy/local/pom.xml`` once
into an ignored cache, formats KRaft storage once, and runs the broker as a detached
process. Its pid file, logs, data and rendered ``server.properties`` all live under
``settings.broker_dir`` (ignored by git), one ``node-<id>`` folder per node.

``start`` is idempotent, ``stop`` asks for a controlled shutdown before it kills, and every
problem an operator can fix (no ``java``/``mvn``, a port already taken) is a one-line
``SetupError``. Pids are only ever signalled after checking that the process really is the
``kafka.Kafka`` we started from this ``broker_dir``, so a broker run by someone else (or a
recycled pid) is never touched.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from hub import broker_security, broker_setup
from hub.atomic_file import write_atomic
from hub.broker_security import BrokerSecrets, SecurityFiles
from hub.broker_setup import LOG4J2_CONFIG, last_error, meta_cluster_id
from hub.config import Settings
from hub.errors import BrokerError, ConfigError, SetupError

__all__ = [
    "HOST",
    "MAX_NODES",
    "NODE_PORT_STEP",
    "BrokerStatus",
    "NodeLayout",
    "admin_env",
    "check_port_free",
    "ephemeral_port_warning",
    "new_cluster_id",
    "node_layout",
    "render_server_properties",
    "replication_factor",
    "start",
    "status",
    "stop",
    "wait_until_answering",
]

HOST = "127.0.0.1"
# Node i (1-based) listens on broker_port + STEP*(i-1) and controller_port + STEP*(i-1):
# 19092/19093, 19192/19193, 19292/19293 with the defaults.
NODE_PORT_STEP = 100
MAX_NODES = 9

_KAFKA_MAIN = "kafka.Kafka"
_CLUSTER_FILE = "cluster.json"
_POLL_S = 0.5
_KILL_WAIT_S = 10.0


@dataclass(frozen=True)
class BrokerStatus:
    """What ``placehub broker status`` reports about the broker(s) under ``broker_dir``."""

    running: bool  # a live process whose pid we recorded
    answering: bool  # it answered a metadata request
    pid: int | None
    bootstrap_servers: str
    log_file: Path
    nodes: int = 1
    pids: tuple[int, ...] = field(default=())
    secure: bool = False  # SASL_SSL listeners and ACLs (hub.broker_security)
    denied: int | None = None  # authorizer denials in the nodes' security.log (secure only)
    failed_authentications: int | None = None  # connections refused before a principal

    def describe(self) -> str:
        """One human line: running or not, pid(s), where it answers, where its log is."""
        what = "broker" if self.nodes == 1 else f"{self.nodes}-node cluster"
        if self.secure:
            what = f"secured {what}"
        if not self.running:
            flag = (f" --nodes {self.nodes}" if self.nodes > 1 else "") + (
                " --secure" if self.secure else ""
            )
            return (
                f"{what} not running ({self.bootstrap_servers}); "
                f"start it with `placehub broker start{flag}`"
            )
        pids = self.pids or ((self.pid,) if self.pid is not None else ())
        who = ("pid " if len(pids) == 1 else "pids ") + ", ".join(str(p) for p in pids)
        if self.nodes > 1 and len(pids) < self.nodes:
            who = f"only {len(pids)} of {self.nodes} nodes: {who}"
        if self.answering:
            refusals = ""
            if self.denied is not None:
                refusals = (
                    f"; {self.denied} ACL denial(s), {self.failed_authentications} failed "
                    f"authentication(s) in {self.log_file.parent.parent}/node-*/"
                    f"{broker_security.SECURITY_LOG}"
                )
            return (
                f"{what} running ({who}), answering on {self.bootstrap_servers}; "
                f"log: {self.log_file}{refusals}"
            )
        return (
            f"{what} running ({who}) but not answering on {self.bootstrap_servers}; "
            f"see {self.log_file}"
        )


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its files and which ports it binds."""

    node_id: int
    dir: Path
    broker_port: int
    controller_port: int

    @property
    def properties_file(self) -> Path:
        """The rendered ``server.properties`` the JVM is started with."""
        return self.dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        """Kafka's ``log.dirs``: partitions and the KRaft metadata log."""
        return self.dir / "data"

    @property
    def pid_file(self) -> Path:
        """Pid of the running JVM; absent when stopped."""
        return self.dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """The broker's own log (log4j2, size-capped)."""
        return self.dir / "broker.log"

    @property
    def out_file(self) -> Path:
        """The JVM's stdout/stderr: crashes and anything before logging starts."""
        return self.dir / "broker.out"

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"{HOST}:{self.broker_port}"


@dataclass(frozen=True)
class _ClusterRecord:
    cluster_id: str
    nodes: int
    bootstrap_servers: str
    secure: bool = False


# --------------------------------------------------------------------------- pure helpers


def _abs(path: Path) -> Path:
    """Absolute, so the JVM (started in the node folder) and pid checks see the same paths."""
    return path.expanduser().absolute()


def node_layout(settings: Settings, nodes: int = 1) -> list[NodeLayout]:
    """The folders and ports of each node of an ``nodes``-node local cluster."""
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError(
            f"--nodes {nodes} is not supported: use 1 to {MAX_NODES} (1 or 3 is usual)"
        )
    return [
        NodeLayout(
            node_id=i,
            dir=_abs(settings.broker_dir) / f"node-{i}",
            broker_port=settings.broker_port + NODE_PORT_STEP * (i - 1),
            controller_port=settings.controller_port + NODE_PORT_STEP * (i - 1),
        )
        for i in range(1, nodes + 1)
    ]


def _validate_ports(layout: Sequence[NodeLayout]) -> None:
    ports: dict[int, str] = {}
    for node in layout:
        for port, setting in (
            (node.broker_port, "PLACEHUB_BROKER_PORT"),
            (node.controller_port, "PLACEHUB_CONTROLLER_PORT"),
        ):
            if port > 65535:
                raise ConfigError(
                    f"{setting}: node {node.node_id} would need port {port} (> 65535); "
                    f"pick a lower port"
                )
            if port in ports:
                raise ConfigError(
                    f"{setting}: port {port} would be used twice ({ports[port]} and {setting}); "
                    f"keep PLACEHUB_BROKER_PORT and PLACEHUB_CONTROLLER_PORT apart by 1 to "
                    f"{NODE_PORT_STEP - 1}"
                )
            ports[port] = setting


def _ephemeral_range() -> tuple[int, int] | None:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def ephemeral_port_warning(layout: Sequence[NodeLayout]) -> str | None:
    """A warning if a listen port lies in the OS range for outgoing connections, else None."""
    span = _ephemeral_range()
    if span is None:
        return None
    ports = sorted(
        port
        for node in layout
        for port in (node.broker_port, node.controller_port)
        if span[0] <= port <= span[1]
    )
    if not ports:
        return None
    return (
        f"warning: port(s) {', '.join(map(str, ports))} lie in the OS ephemeral range "
        f"{span[0]}-{span[1]}; an outgoing connection may hold one and make start-up fail "
        f"with 'Address already in use' (ports below {span[0]} are safe)"
    )


def _bootstrap(layout: Sequence[NodeLayout]) -> str:
    return ",".join(node.address for node in layout)


def replication_factor(nodes: int) -> int:
    """The replicas a topic gets on an ``nodes``-node cluster: 3 (1 on the one-node demo)."""
    return min(3, nodes)


def render_server_properties(
    settings: Settings, node: NodeLayout, nodes: int = 1, secrets: BrokerSecrets | None = None
) -> str:
    """The ``server.properties`` text for one node of an ``nodes``-node combined-mode cluster
    (secured by ``hub.broker_security`` when ``secrets`` are given)."""
    layout = node_layout(settings, nodes)
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in layout)
    replication = replication_factor(nodes)
    min_isr = min(2, nodes)
    lines = {
        # KRaft, each node is both broker and controller; static quorum.
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        # Bind to loopback only: this broker has no authentication.
        "listeners": f"PLAINTEXT://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{node.broker_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        # Topics.
        "num.partitions": str(settings.partitions),
        # Every topic is created on purpose, with its partitions, retention and
        # replication: a client asking about a missing topic must not make one.
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_isr),
        # Internal topics sized for one machine.
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "group.initial.rebalance.delay.ms": "0",
        # Small-machine resource use.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.hours": "168",
        # How soon expired segments go and compaction runs once due: an erasure waits on
        # both (README, "What happens on withdrawal"); the checks are cheap on a small broker.
        "log.retention.check.interval.ms": "5000",
        "log.cleaner.backoff.ms": "1000",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    if secrets is not None:
        lines.update(
            broker_security.secure_properties(
                secrets, node.node_id, HOST, node.broker_port, node.controller_port
            )
        )
    header = (
        "# Rendered by hub/broker.py on every `placehub broker start`; edits are overwritten.\n"
        "# Change PLACEHUB_* settings instead.\n"
    )
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def new_cluster_id() -> str:
    """A random KRaft cluster id, in the same form as ``kafka-storage random-uuid``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like CLI flags
            return cluster_id


def check_port_free(port: int, *, setting: str = "PLACEHUB_BROKER_PORT", host: str = HOST) -> None:
    """Raise SetupError in one line if ``host:port`` cannot be bound (someone listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the JVM: sockets of a just-stopped broker in TIME_WAIT are not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise SetupError(
                    f"port {port} on {host} is already in use by another process; "
                    f"stop it or set {setting}"
                ) from None
            raise SetupError(f"cannot bind {host}:{port} ({exc.strerror}); set {setting}") from None


# --------------------------------------------------------------------------- processes


def _proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (``None`` if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _is_our_broker(pid: int, node: NodeLayout) -> bool:
    """True if ``pid`` is alive and is the kafka.Kafka JVM started for ``node``."""
    if pid <= 1 or pid == os.getpid():
        return False
    if Path("/proc").is_dir():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        state = _proc_state(pid)
        if state is None or state in ("Z", "X"):  # zombies are dead brokers nobody reaped yet
            return False
        args = [a.decode(errors="replace") for a in argv]
        return _KAFKA_MAIN in args and str(node.properties_file) in args
    try:  # no /proc (macOS): trust the pid file
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(node: NodeLayout) -> int | None:
    try:
        return int(node.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _live_pid(node: NodeLayout) -> int | None:
    """The recorded pid of ``node`` if that process is our live broker."""
    pid = _read_pid(node)
    if pid is not None and _is_our_broker(pid, node):
        return pid
    return None


def _clean_stale_pid(node: NodeLayout) -> int | None:
    """Like ``_live_pid``, but removes a pid file that no longer names our broker."""
    pid = _live_pid(node)
    if pid is None:
        node.pid_file.unlink(missing_ok=True)
    return pid


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the broker's process group (only the JVM is in it)."""
    try:
        pgid = os.getpgid(pid)
        if pgid > 1 and pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids: dict[int, NodeLayout], timeout_s: float) -> dict[int, NodeLayout]:
    """Wait until the processes exit; return the ones still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    alive = dict(pids)
    while alive:
        alive = {pid: node for pid, node in alive.items() if _is_our_broker(pid, node)}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return alive


def _terminate(pids: dict[int, NodeLayout], timeout_s: float) -> None:
    """SIGTERM (controlled shutdown), then SIGKILL what is left after ``timeout_s``."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    alive = _wait_gone(pids, timeout_s)
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    alive = _wait_gone(alive, _KILL_WAIT_S)
    for node in pids.values():
        if _read_pid(node) not in alive:
            node.pid_file.unlink(missing_ok=True)
    if alive:
        raise BrokerError(
            f"broker pid(s) {', '.join(map(str, alive))} survived SIGKILL; check `ps` and the "
            f"logs under {next(iter(alive.values())).dir.parent}"
        )


def _launch(node: NodeLayout, java: str, libs: Path, heap_mb: int) -> int:
    """Start one node's JVM fully detached (its own session, not our child); return its pid."""
    command = [
        java,
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        f"-Dkafka.logs.dir={node.dir}",
        "-cp",
        f"{libs}/*",
        _KAFKA_MAIN,
        str(node.properties_file),
    ]
    with node.out_file.open("a") as out:
        out.write(f"=== placehub broker start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
    # sh backgrounds the JVM and exits at once, so the JVM is re-parented away from us:
    # no zombie when it stops, no "still running" warning when this Python process exits.
    script = 'out="$1"; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", script, "sh", str(node.out_file), *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            start_new_session=True,
            cwd=node.dir,
        )
        pid = int(done.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise BrokerError(f"could not launch the broker JVM ({exc}); see {node.out_file}") from None
    write_atomic(node.pid_file, f"{pid}\n")
    return pid


# --------------------------------------------------------------------------- logs


def _tail(path: Path, offset: int = 0, max_bytes: int = 256 * 1024) -> list[str]:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = offset if offset <= size else 0  # the log rolled over
            handle.seek(max(start, size - max_bytes))
            return handle.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _startup_failure(node: NodeLayout, log_offset: int, out_offset: int) -> str:
    """``broker exited during start-up; see <log>`` plus its last error line, if any."""
    error = last_error(_tail(node.log_file, log_offset)) or last_error(
        _tail(node.out_file, out_offset)
    )
    log = node.log_file if node.log_file.exists() else node.out_file
    where = f"node {node.node_id} " if node.node_id > 1 else ""
    message = f"broker {where}exited during start-up; see {log}"
    return f"{message} (last error: {error})" if error else message


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- metadata probe


def _admin_client(
    bootstrap_servers: str, timeout_s: float, options: dict[str, Any] | None = None
) -> Any:
    """A KafkaAdminClient, or an exception; never leaves its IO thread behind on failure."""
    timeout_ms = max(200, int(timeout_s * 1000))
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            bootstrap_servers=bootstrap_servers.split(","),
            client_id="placehub-broker-probe",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 1000),
            reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=1000,
            **(options or {}),
        )
    except BaseException:
        # A failed constructor leaves its network thread running and close() refuses to run.
        for part, method in (("_client", "close"), ("_net", "stop"), ("_metrics", "close")):
            with contextlib.suppress(Exception):
                component = getattr(admin, part, None)
                if component is not None:
                    getattr(component, method)()
        raise
    return admin


def _tcp_open(bootstrap_servers: str) -> bool:
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or HOST, int(port)), timeout=0.5):
                return True
        except (OSError, ValueError):
            continue
    return False


def _probe(
    bootstrap_servers: str,
    timeout_s: float,
    expected_brokers: int = 1,
    options: dict[str, Any] | None = None,
) -> str | None:
    """None if the cluster answers a metadata request with ``expected_brokers`` live brokers
    (connecting with the kafka-python ``options`` of a secured cluster, if any)."""
    if not _tcp_open(bootstrap_servers):
        return "connection refused"
    try:
        admin = _admin_client(bootstrap_servers, timeout_s, options)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    try:
        cluster = admin.describe_cluster()
        brokers = [b for b in cluster.get("brokers", []) if not b.get("is_fenced", False)]
    except Exception as exc:
        return str(exc) or type(exc).__name__
    finally:
        with contextlib.suppress(Exception):
            admin.close()
    if len(brokers) < expected_brokers:
        return f"{len(brokers)} of {expected_brokers} brokers registered"
    return None


def wait_until_answering(
    bootstrap_servers: str,
    timeout_s: float,
    *,
    expected_brokers: int = 1,
    options: dict[str, Any] | None = None,
) -> None:
    """Block until Kafka at ``bootstrap_servers`` answers a metadata request; else BrokerError."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        reason = _probe(bootstrap_servers, min(5.0, max(remaining, 0.5)), expected_brokers, options)
        if reason is None:
            return
        if time.monotonic() + _POLL_S >= deadline:
            raise BrokerError(
                f"Kafka at {bootstrap_servers} did not answer a metadata request within "
                f"{timeout_s:g}s ({reason})"
            )
        time.sleep(_POLL_S)


def _wait_for_start(
    launched: dict[int, NodeLayout],
    offsets: dict[int, tuple[int, int]],
    nodes: int,
    timeout_s: float,
    options: dict[str, Any] | None,
) -> None:
    """Wait until every launched node itself answers and sees all ``nodes`` brokers live."""
    deadline = time.monotonic() + timeout_s
    waiting = dict(launched)
    while True:
        for pid, node in launched.items():
            if not _is_our_broker(pid, node):
                raise BrokerError(_startup_failure(node, *offsets[pid]))
        reason = "not started"
        for pid, node in list(waiting.items()):
            remaining = deadline - time.monotonic()
            probe = _probe(node.address, min(5.0, max(remaining, 0.5)), nodes, options)
            if probe is None:
                del waiting[pid]
            else:
                reason = probe
                break
        if not waiting:
            return
        if time.monotonic() + _POLL_S >= deadline:
            node = next(iter(waiting.values()))
            raise BrokerError(
                f"broker did not answer on {node.address} within {timeout_s:g}s ({reason}); "
                f"stopped it; see {node.log_file}"
            )
        time.sleep(_POLL_S)


# --------------------------------------------------------------------------- jars and storage


def _read_cluster(settings: Settings) -> _ClusterRecord | None:
    """What ``broker_dir`` last ran: its cluster.json, else guessed from meta.properties."""
    try:
        raw = json.loads((settings.broker_dir / _CLUSTER_FILE).read_text())
        return _ClusterRecord(
            str(raw["cluster_id"]),
            int(raw["nodes"]),
            str(raw["bootstrap_servers"]),
            bool(raw.get("secure", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    formatted = sorted(
        d for d in settings.broker_dir.glob("node-*") if meta_cluster_id(d) is not None
    )
    if not formatted:
        return None
    cluster_id = meta_cluster_id(formatted[0]) or new_cluster_id()
    nodes = len(formatted)
    return _ClusterRecord(
        cluster_id,
        nodes,
        _bootstrap(node_layout(settings, min(nodes, MAX_NODES))),
        _security_files(settings).dir.is_dir(),
    )


def _security_files(settings: Settings) -> SecurityFiles:
    return SecurityFiles(_abs(settings.broker_dir) / "security")


def _client_options(settings: Settings, secure: bool) -> dict[str, Any] | None:
    """The admin's kafka-python options for a secured cluster; None for a plain one."""
    if not secure:
        return None
    secrets = broker_security.read_secrets(_security_files(settings))
    return broker_security.client_options(secrets)


def admin_env(settings: Settings) -> str:
    """The ``PLACEHUB_*`` lines that make a client the secured local cluster's admin."""
    record = _read_cluster(settings)
    if record is None or not record.secure:
        raise ConfigError(
            f"{settings.broker_dir} holds no secured cluster; start one with "
            f"`placehub broker start --secure`"
        )
    return broker_security.admin_env(
        _security_files(settings), record.bootstrap_servers, replication_factor(record.nodes)
    )


def _prepare(
    settings: Settings,
    layout: Sequence[NodeLayout],
    to_launch: Sequence[NodeLayout],
    java: str,
    libs: Path,
    progress: Callable[[str], None],
    secure: bool,
) -> None:
    """Render server.properties, record the cluster, format storage where needed."""
    nodes = len(layout)
    record = _read_cluster(settings)
    formatted = [d for d in settings.broker_dir.glob("node-*") if meta_cluster_id(d) is not None]
    if record is not None and formatted and record.nodes != nodes:
        raise ConfigError(
            f"{settings.broker_dir} holds a {record.nodes}-node broker's data; to start "
            f"{nodes} node(s) delete that folder (its topics are lost) or set PLACEHUB_BROKER_DIR"
        )
    if record is not None and formatted and record.secure != secure:
        held, asked = ("secured", "plain") if record.secure else ("plain", "secured")
        raise ConfigError(
            f"{settings.broker_dir} holds a {held} cluster's data; to start a {asked} one "
            f"delete that folder (its topics are lost) or set PLACEHUB_BROKER_DIR; to keep it, "
            f"start it {'with' if record.secure else 'without'} --secure"
        )
    cluster_id = record.cluster_id if record is not None and formatted else new_cluster_id()
    secrets = None
    if secure:
        files = _security_files(settings)
        secrets = broker_security.ensure_secrets(files, [node.node_id for node in layout])
        env = broker_security.admin_env(files, _bootstrap(layout), replication_factor(nodes))
        write_atomic(files.admin_env, env, 0o600)
    for node in to_launch:
        node.dir.mkdir(parents=True, exist_ok=True)
        text = render_server_properties(settings, node, nodes, secrets)
        # A secured node's file holds its passwords: its owner alone reads it.
        write_atomic(node.properties_file, text, 0o600 if secure else 0o644)
    record_text = {
        "cluster_id": cluster_id,
        "nodes": nodes,
        "bootstrap_servers": _bootstrap(layout),
        "secure": secure,
    }
    write_atomic(settings.broker_dir / _CLUSTER_FILE, json.dumps(record_text, indent=2) + "\n")
    scram = broker_security.storage_format_args(secrets) if secrets is not None else []
    broker_setup.format_storage(to_launch, cluster_id, java, libs, progress, scram)


# --------------------------------------------------------------------------- public commands


@contextlib.contextmanager
def _exclusive(broker_dir: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """Serialise start/stop on one broker_dir across processes (two shells, two test runs)."""
    broker_dir.mkdir(parents=True, exist_ok=True)
    with (broker_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another `placehub broker` command on {broker_dir}...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the lock goes with the file descriptor


def _current(settings: Settings) -> tuple[int, list[NodeLayout], dict[int, int]]:
    """(node count, layout, {node_id: live pid}) for what ``broker_dir`` holds."""
    record = _read_cluster(settings)
    nodes = record.nodes if record is not None and 1 <= record.nodes <= MAX_NODES else 1
    layout = node_layout(settings, nodes)
    live = {node.node_id: pid for node in layout if (pid := _live_pid(node)) is not None}
    return nodes, layout, live


def status(settings: Settings) -> BrokerStatus:
    """Whether our broker process is alive and whether it answers a metadata request."""
    record = _read_cluster(settings)
    nodes, layout, live = _current(settings)
    bootstrap = record.bootstrap_servers if live and record is not None else _bootstrap(layout)
    secure = record is not None and record.secure
    options = _client_options(settings, secure) if live else None
    answering = bool(live) and _probe(bootstrap, 3.0, options=options) is None
    first = next((node for node in layout if node.node_id in live), layout[0])
    pids = tuple(live[node_id] for node_id in sorted(live))
    events = broker_security.security_events(node.dir for node in layout) if secure else None
    return BrokerStatus(
        running=bool(live),
        answering=answering,
        pid=pids[0] if pids else None,
        bootstrap_servers=bootstrap,
        log_file=first.log_file,
        nodes=nodes,
        pids=pids,
        secure=secure,
        denied=None if events is None else events.denied,
        failed_authentications=None if events is None else events.failed_authentications,
    )


def start(
    settings: Settings,
    *,
    nodes: int = 1,
    timeout_s: float = 60.0,
    progress: Callable[[str], None] = print,
    secure: bool | None = None,
) -> BrokerStatus:
    """Start the local broker (or ``nodes``-node cluster) and wait until it answers; idempotent.

    ``secure`` (default: ``settings.broker_secure``) runs it with SASL_SSL listeners, TLS
    from a local CA and ACLs (``hub.broker_security``)."""
    layout = node_layout(settings, nodes)
    _validate_ports(layout)
    with _exclusive(settings.broker_dir, progress):
        wanted = settings.broker_secure if secure is None else secure
        return _start_locked(settings, layout, timeout_s, progress, wanted)


def _start_locked(
    settings: Settings,
    layout: list[NodeLayout],
    timeout_s: float,
    progress: Callable[[str], None],
    secure: bool,
) -> BrokerStatus:
    nodes = len(layout)
    running_nodes, running_layout, live = _current(settings)
    for node in running_layout:
        _clean_stale_pid(node)
    if live:
        if running_nodes != nodes:
            raise ConfigError(
                f"a {running_nodes}-node broker is already running from {settings.broker_dir}; "
                f"run `placehub broker stop` before starting {nodes} node(s)"
            )
        if len(live) == nodes:
            current = status(settings)
            if current.secure != secure:
                raise ConfigError(
                    f"a {'secured' if current.secure else 'plain'} broker is already running "
                    f"from {settings.broker_dir}; start it "
                    f"{'with' if current.secure else 'without'} --secure, or run "
                    f"`placehub broker stop` first"
                )
            if current.answering:
                progress("already running")
                return current
            progress("broker process already running; waiting for it to answer...")
            try:
                wait_until_answering(
                    current.bootstrap_servers,
                    timeout_s,
                    expected_brokers=1,
                    options=_client_options(settings, current.secure),
                )
            except BrokerError as exc:
                raise BrokerError(
                    f"broker is running (pid {current.pid}) but not answering: {exc}; see "
                    f"{current.log_file}, or `placehub broker stop` and start again"
                ) from None
            return status(settings)
    if (warning := ephemeral_port_warning(layout)) is not None:
        progress(warning)
    to_launch = [node for node in layout if node.node_id not in live]
    java = broker_setup.require_java()
    for node in to_launch:
        check_port_free(node.broker_port, setting="PLACEHUB_BROKER_PORT")
        check_port_free(node.controller_port, setting="PLACEHUB_CONTROLLER_PORT")
    libs = broker_setup.fetch_jars(settings, progress=progress)
    _prepare(settings, layout, to_launch, java, libs, progress, secure)

    bootstrap = _bootstrap(layout)
    what = ("secured " if secure else "") + ("broker" if nodes == 1 else f"{nodes}-node cluster")
    progress(
        f"starting {what} on {bootstrap} (heap {settings.broker_heap_mb} MB"
        f"{' each' if nodes > 1 else ''})..."
    )
    began = time.monotonic()
    launched: dict[int, NodeLayout] = {}
    offsets: dict[int, tuple[int, int]] = {}
    try:
        for node in to_launch:
            log_offset, out_offset = _size(node.log_file), _size(node.out_file)
            pid = _launch(node, java, libs, settings.broker_heap_mb)
            launched[pid] = node
            offsets[pid] = (log_offset, out_offset)
        _wait_for_start(launched, offsets, nodes, timeout_s, _client_options(settings, secure))
    except BaseException:
        with contextlib.suppress(Exception):
            _terminate(launched, 10.0)
        raise
    progress(f"ready in {time.monotonic() - began:.1f}s")
    return status(settings)


def stop(settings: Settings, *, timeout_s: float = 30.0) -> BrokerStatus:
    """Shut our broker down cleanly (SIGTERM, SIGKILL after ``timeout_s``); harmless if stopped."""
    if not settings.broker_dir.is_dir():
        return status(settings)
    with _exclusive(settings.broker_dir, lambda _: None):
        _stop_locked(settings, timeout_s)
    return status(settings)


def _stop_locked(settings: Settings, timeout_s: float) -> None:
    _, layout, _ = _current(settings)
    # Every node folder, not only the recorded count: nothing we started is left behind.
    nodes = {n.dir: n for n in layout}
    for extra in node_layout(settings, MAX_NODES):
        if extra.dir not in nodes and extra.pid_file.exists():
            nodes[extra.dir] = extra
    live: dict[int, NodeLayout] = {}
    for node in nodes.values():
        pid = _clean_stale_pid(node)
        if pid is not None:
            live[pid] = node
    if live:
        _terminate(live, timeout_s)
