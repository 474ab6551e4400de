"""`placehub broker start|stop|status` against real Kafka JVMs.

These tests run their own brokers on their own ports (29092/29093 for one node,
27092.. for three) with their own broker_dir, sharing only the jar cache, so a broker
on the default port 19092 used by other tests is never touched. Ports stay below the
Linux ephemeral range (32768+) so an outgoing connection can never hold one.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from hub import broker
from hub.config import Settings
from hub.errors import SetupError

pytestmark = pytest.mark.integration  # a missing java fails these tests: never skipped


def _kafka_pids() -> set[int]:
    done = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True)
    return {int(pid) for pid in done.stdout.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def others() -> Iterator[set[int]]:
    """Kafka JVMs someone else runs; each must still be alive after the test."""
    before = _kafka_pids()
    yield before
    assert {pid for pid in before if _alive(pid)} == before, "a foreign broker was stopped"


def _settings(tmp_path: Path, port: int, name: str) -> Settings:
    return Settings(
        broker_port=port,
        controller_port=port + 1,
        bootstrap_servers=f"127.0.0.1:{port}",
        broker_dir=tmp_path / name,
        broker_heap_mb=256,
    )


@pytest.fixture
def single(tmp_path: Path, others: set[int]) -> Iterator[Settings]:
    settings = _settings(tmp_path, 29092, "broker")
    try:
        yield settings
    finally:
        broker.stop(settings)


@pytest.fixture
def cluster(tmp_path: Path, others: set[int]) -> Iterator[Settings]:
    settings = _settings(tmp_path, 27092, "cluster")
    try:
        yield settings
    finally:
        broker.stop(settings)


def test_start_status_produce_consume_stop(single: Settings, tmp_path: Path) -> None:
    messages: list[str] = []
    started = broker.start(single, timeout_s=90, progress=messages.append)
    assert started.running and started.answering
    assert started.pid is not None
    assert started.bootstrap_servers == "127.0.0.1:29092"
    assert started.log_file.is_relative_to(single.broker_dir)
    assert started.log_file.exists()
    node = broker.node_layout(single)[0]
    assert node.pid_file.read_text().strip() == str(started.pid)
    assert (node.data_dir / "meta.properties").exists()
    assert started.pid in _kafka_pids()

    current = broker.status(single)
    assert current.running and current.answering and current.pid == started.pid

    # Starting twice is harmless: same process, told so.
    again: list[str] = []
    assert broker.start(single, progress=again.append).pid == started.pid
    assert any("already running" in line for line in again)

    # It is a working Kafka: one message goes round.
    topic = f"placehub-broker-test-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(bootstrap_servers=started.bootstrap_servers) as admin:
        admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(bootstrap_servers=started.bootstrap_servers)
    try:
        producer.send(topic, key=b"k", value=b"hello place").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=started.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20_000,
    )
    try:
        received = [(record.key, record.value) for record in consumer]
    finally:
        consumer.close()
    assert received[:1] == [(b"k", b"hello place")]

    # A second broker configured on the same port: one actionable line, nothing launched.
    second = _settings(tmp_path, 29092, "second-broker")
    with pytest.raises(SetupError) as caught:
        broker.start(second, progress=lambda _: None)
    assert str(caught.value) == (
        "port 29092 on 127.0.0.1 is already in use by another process; "
        "stop it or set PLACEHUB_BROKER_PORT"
    )
    assert not list(second.broker_dir.glob("node-*"))

    stopped = broker.stop(single)
    assert not stopped.running and not stopped.answering and stopped.pid is None
    assert not node.pid_file.exists()
    assert started.pid not in _kafka_pids()
    assert node.log_file.exists()  # the log is kept for after-the-fact debugging
    assert not broker.status(single).running
    assert not broker.stop(single).running  # stopping twice is harmless

    # Restart reuses the formatted storage: the topic survives.
    restarted = broker.start(single, timeout_s=90, progress=lambda _: None)
    assert restarted.answering and restarted.pid != started.pid
    with KafkaAdminClient(bootstrap_servers=restarted.bootstrap_servers) as admin:
        assert topic in admin.list_topics()


def test_three_node_cluster(cluster: Settings) -> None:
    started = broker.start(cluster, nodes=3, timeout_s=120, progress=lambda _: None)
    assert started.running and started.answering
    assert started.nodes == 3 and len(started.pids) == 3
    assert started.bootstrap_servers == "127.0.0.1:27092,127.0.0.1:27192,127.0.0.1:27292"

    topic = f"placehub-cluster-test-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(bootstrap_servers=started.bootstrap_servers) as admin:
        brokers = admin.describe_cluster()["brokers"]
        assert sorted(b["broker_id"] for b in brokers) == [1, 2, 3]
        admin.create_topics([NewTopic(topic, 3, 3)])
    producer = KafkaProducer(bootstrap_servers=started.bootstrap_servers, acks="all")
    try:
        producer.send(topic, value=b"replicated").get(timeout=30)
    finally:
        producer.close()

    assert broker.start(cluster, nodes=3, progress=lambda _: None).pids == started.pids

    stopped = broker.stop(cluster)
    assert not stopped.running
    assert all(not (node.pid_file.exists()) for node in broker.node_layout(cluster, 3))
    assert not set(started.pids) & _kafka_pids()
