"""Helpers for integration tests: worker processes and reading topics directly."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from hub.config import PROJECT_ROOT, Settings
from hub.kafka_clients import kafka_python_options, kafka_python_producer_options

Record = tuple[bytes | None, bytes | None, dict[str, bytes]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker_env(settings: Settings, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of a worker process for ``settings``' hub, plus ``PLACEHUB_*`` extras."""
    env = {**os.environ, **{f"PLACEHUB_{k.upper()}": str(v) for k, v in (overrides or {}).items()}}
    env.update(
        PLACEHUB_TOPIC_PREFIX=settings.topic_prefix,
        PLACEHUB_APP_ID=settings.app_id,
        PLACEHUB_WEB_PORT=str(settings.web_port),
        PLACEHUB_STATE_DIR=str(settings.state_dir),
        PLACEHUB_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        PLACEHUB_AGREEMENTS_DIR=str(settings.agreements_dir),
    )
    env.update(security_env(settings))
    # One hub's workers share a secret to sign their calls to each other (hub.routing).
    secret = hashlib.sha256(f"test worker secret {settings.app_id}".encode()).hexdigest()
    env.setdefault("PLACEHUB_WORKER_SECRET", secret)
    return env


def security_env(settings: Settings) -> dict[str, str]:
    """The ``PLACEHUB_*`` variables of ``settings``' Kafka security (those that are set)."""
    names = [
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password_file",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
    ]
    values = {name: getattr(settings, name) for name in names}
    env = {f"PLACEHUB_{n.upper()}": str(v) for n, v in values.items() if v is not None}
    if settings.sasl_password is not None:
        env["PLACEHUB_SASL_PASSWORD"] = settings.sasl_password.get_secret_value()
    return env


@dataclass
class WorkerProcess:
    """A ``placehub worker`` child process for one test's isolated hub."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "hub.cli", "worker"])

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self, timeout_s: float = 90) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker exited; see {self.log_path}"
            try:
                if requests.get(f"{self.url}/v1/health", timeout=2).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up, or busy starting
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker did not become ready; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def get(self, path: str, token: str | None = "demo-admin") -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10)

    def wait_for(
        self,
        path: str,
        predicate: Callable[[requests.Response], bool],
        timeout_s: float = 30,
        token: str = "demo-admin",
        expecting: str = "",
    ) -> requests.Response:
        """Poll ``path`` until ``predicate(response)`` holds and return that response.

        Raises AssertionError after ``timeout_s``, naming ``path``, ``expecting`` (what the
        predicate waits for) and the last response.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.get(path, token)
            if predicate(response):
                return response
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"GET {path} did not show {expecting or 'what was awaited'} within "
                    f"{timeout_s}s; last response {response.status_code}: {response.text[:500]}"
                )
            time.sleep(0.2)


def read_topic(settings: Settings, topic: str, timeout_s: float = 10) -> list[Record]:
    """Every record now in ``topic``: (key, value, headers).

    Raises AssertionError if the records up to the end offsets seen at the start cannot be
    read within ``timeout_s`` (a partial read would let "nothing there" pass falsely).
    """
    consumer = KafkaConsumer(**kafka_python_options(settings), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                behind = {tp.partition: (consumer.position(tp), ends[tp]) for tp in tps}
                raise AssertionError(
                    f"{topic}: not read to its end offsets within {timeout_s}s; "
                    f"{len(records)} records read, (position, end) by partition: {behind}"
                )
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.key, r.value, dict(r.headers)) for r in batch)
        return records
    finally:
        consumer.close()


def wait_for_records(
    settings: Settings,
    topic: str,
    count: int,
    timeout_s: float = 30,
    until: Callable[[list[Record]], bool] | None = None,
    expecting: str = "",
) -> list[Record]:
    """Poll ``topic`` until it holds at least ``count`` records (and ``until(records)``
    holds, if given); returns them.

    Raises AssertionError after ``timeout_s``, naming the topic, what was expected and how
    many records it held.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_topic(settings, topic)
        if len(records) >= count and (until is None or until(records)):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{topic}: expected at least {count} records"
                f"{f' with {expecting}' if expecting else ''} within {timeout_s}s; "
                f"it holds {len(records)}"
            )
        time.sleep(0.3)


def produce_raw(
    settings: Settings, topic: str, value: bytes, key: bytes = b"k", partition: int | None = None
) -> None:
    producer = KafkaProducer(**kafka_python_producer_options(settings))
    try:
        producer.send(topic, key=key, value=value, partition=partition).get(timeout=10)
    finally:
        producer.close()


def committed(settings: Settings, topic: str) -> dict[int, int]:
    """The hub's consumer group's committed offset per partition of ``topic``."""
    admin = KafkaAdminClient(**kafka_python_options(settings))
    try:
        offsets = admin.list_group_offsets(settings.app_id)[settings.app_id]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def ends(settings: Settings, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(**kafka_python_options(settings))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def caught_up(settings: Settings, topic: str) -> bool:
    """Whether the hub's group has committed every partition of ``topic`` to its end: its
    stage has done every record there (commits follow the stages' marks)."""
    done = committed(settings, topic)
    return all(done.get(p, 0) >= end for p, end in ends(settings, topic).items() if end)


def drop_topics(settings: Settings) -> None:
    """Delete a stopped worker's topics: every test hub has some hundred partitions, and a
    shared broker that keeps them all runs out of heap."""
    admin = KafkaAdminClient(**kafka_python_options(settings))
    try:
        ours = [
            t
            for t in admin.list_topics()
            if t.startswith((settings.topic_prefix, f"{settings.app_id}-"))
        ]
        if ours:
            admin.delete_topics(ours)
    finally:
        admin.close()
