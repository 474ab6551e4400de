"""Failures under steady load on the secured three-node cluster (issue 14, items 1 and 5).

The simulated place (``test_stream_core.Place``: people, consents, links, events and the
reference views computed from them) publishes through the SDK, each partner as its own
principal, while a broker of three is stopped and brought back, or one of two workers is
killed with ``kill -9``. Every publish must return, and the end state must equal the
reference: a replicated cluster loses no acknowledged event and a worker's partitions move
to the survivor. Against ``tests.integration.secure_cluster`` (its own ports, one start per
module); each test has its own topics, group and principals.
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka.admin import ConfigResource, ConfigResourceType

from connectors import EventDraft, Publisher
from hub import broker, contracts, kafka_acls
from hub.config import Settings
from hub.kafka_acls import Principal
from hub.registry import SchemaRegistry
from hub.topics import Topics
from tests.integration.helpers import WorkerProcess, free_port, worker_env
from tests.integration.secure_cluster import (  # noqa: F401 (the fixture)
    SECURE_NODES,
    SecureCluster,
    secure_cluster,
    wait_for,
)
from tests.integration.test_stream_core import (
    PARTNERS,
    Place,
    assert_matches_reference,
    eventually,
    publish_link,
    settled,
)

pytestmark = pytest.mark.integration

READER = "demo-practitioner-housing"


@dataclass
class Hub:
    """One test's hub on the secured cluster: its settings as the admin, as each partner's
    principal and as its workers' principals, and the workers started so far."""

    cluster: SecureCluster
    folder: Path
    base: dict[str, Any]
    admin: Settings
    partners: dict[str, Settings] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    def login(self, principal: Principal, **overrides: Any) -> Settings:
        """Settings that log in as ``principal``, made here with its ACLs."""
        password = kafka_acls.new_password()
        with self.cluster.admin() as admin:
            kafka_acls.onboard(admin, principal, password)
        return self.cluster.settings_for(principal, password, **{**self.base, **overrides})

    def start_worker(self) -> WorkerProcess:
        """A worker of this hub as its own principal, on its own port and state folder."""
        n = len(self.workers) + 1
        app_id = self.base["app_id"]
        principal = kafka_acls.worker(f"{app_id}-{n}", app_id, self.topics)
        settings = self.login(principal, web_port=free_port(), state_dir=self.folder / f"state-{n}")
        env = worker_env(settings, {"replication_factor": SECURE_NODES})
        worker = WorkerProcess(settings, self.folder / f"worker-{n}.log", env=env)
        self.workers.append(worker)
        worker.start(timeout_s=180)
        return worker

    @property
    def topics(self) -> Topics:
        return Topics(self.base["topic_prefix"])


@pytest.fixture
def hub(
    secure_cluster: SecureCluster,  # noqa: F811
    tmp_path: Path,
    agreements_dir: Path,
) -> Iterator[Hub]:
    """A hub of this test's own on the cluster: the contracts registered by the admin (as
    ``placehub schemas register``), the partners onboarded; its workers stopped at the end."""
    run = uuid.uuid4().hex[:8]
    base = {
        "topic_prefix": f"f{run}.",
        "app_id": f"placehub-f{run}",
        "agreements_dir": agreements_dir,
        "replication_factor": SECURE_NODES,  # PLACEHUB_REPLICATION_FACTOR=3 on 3 nodes
        "broker_secure": False,  # the broker's own setting, not a client's
    }
    admin = Settings(
        **{
            **secure_cluster.settings.model_dump(),
            **base,
            **admin_login(secure_cluster),
        }
    )
    registry = SchemaRegistry(admin)
    try:
        contracts.register(registry, admin)
    finally:
        registry.close()
    hub = Hub(secure_cluster, tmp_path, base, admin)
    for partner in PARTNERS:
        hub.partners[partner] = hub.login(kafka_acls.partner(partner, hub.topics))
    try:
        yield hub
    finally:
        for worker in hub.workers:
            worker.stop()


def admin_login(cluster: SecureCluster) -> dict[str, object]:
    """The admin's ``PLACEHUB_*`` security settings (as ``placehub broker env`` prints them)."""
    files = cluster.secrets.files
    return {
        "security_protocol": "SASL_SSL",
        "sasl_username": "admin",
        "sasl_password_file": files.password_file("admin"),
        "ssl_cafile": files.ca_cert,
    }


class SteadyLoad:
    """The place's consents and links, then its events in small chunks, each partner
    through its own Publisher, from a thread. It holds its last third until the test has
    caused its failure (``failed``), so at least that much is published after the failure
    began, whatever the speeds; every publish must return."""

    def __init__(self, place: Place, partners: dict[str, Settings], chunk: int = 10) -> None:
        self.place, self.partners, self.chunk = place, partners, chunk
        self.returned = 0  # events whose publish returned
        self.failed = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """A test that failed before ``join`` does not wait for its held events forever."""
        self.failed.set()
        self._thread.join(timeout=120)

    def join(self) -> None:
        """Wait for the last publish; raise what a publish raised."""
        self.failed.set()
        self._thread.join()
        if self._errors:
            raise self._errors[0]

    def wait_for(self, share: float) -> None:
        """Return once ``share`` of the events were published (raises on a failed publish)."""
        target = int(len(self.place.events) * share)
        wait_for(
            f"{target} events published",
            lambda: self.returned >= target or bool(self._errors),
            timeout_s=120,
        )
        if self._errors:
            raise self._errors[0]

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:
            self._errors.append(exc)

    def _publish(self) -> None:
        housing = self.partners["council-housing"]
        with Publisher("council-housing", "northgate", housing) as publisher:
            publisher.publish_consents(self.place.consents())
        for n, (a, b) in enumerate(self.place.links()):
            publish_link(housing, "council-housing", f"l-{n}", a, b)
        publishers = {p: Publisher(p, "sim", self.partners[p]) for p in PARTNERS}
        events = self.place.events
        hold_at = 2 * len(events) // 3
        try:
            for start in range(0, len(events), self.chunk):
                if start >= hold_at:
                    self.failed.wait()
                batch: dict[str, list[EventDraft]] = defaultdict(list)
                for partner, draft, _ in events[start : start + self.chunk]:
                    batch[partner].append(draft)
                for partner, drafts in batch.items():
                    publishers[partner].publish_many(drafts)
                    self.returned += len(drafts)
        finally:
            for publisher in publishers.values():
                publisher.close()


def _node_pid(cluster: SecureCluster, node_id: int) -> int:
    node = next(
        n for n in broker.node_layout(cluster.settings, SECURE_NODES) if n.node_id == node_id
    )
    return int(node.pid_file.read_text())


def _stop_node(cluster: SecureCluster, node_id: int) -> None:
    """Stop one node as an operator would (SIGTERM: a controlled shutdown)."""
    pid = _node_pid(cluster, node_id)
    os.kill(pid, signal.SIGTERM)
    wait_for(f"node {node_id} to stop", lambda: not Path(f"/proc/{pid}").exists(), timeout_s=60)


def _hub_topics(hub: Hub) -> list[str]:
    with hub.cluster.admin() as admin:
        names = admin.list_topics()
    prefix, app_id = hub.base["topic_prefix"], hub.base["app_id"]
    return sorted(t for t in names if t.startswith(prefix) or t.startswith(app_id))


def _replication(hub: Hub) -> dict[str, tuple[set[int], set[int], str]]:
    """Each of the hub's topics: its replica counts, in-sync counts and min.insync.replicas."""
    names = _hub_topics(hub)
    with hub.cluster.admin() as admin:
        described = admin.describe_topics(names)
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
            config_filter="all",
        )
    min_isr = {
        name: str(entries["min.insync.replicas"]["value"])
        for name, entries in configs["topic"].items()
    }
    shown: dict[str, tuple[set[int], set[int], str]] = {}
    for topic in described:
        partitions = topic["partitions"]
        replicas = {len(p["replica_nodes"]) for p in partitions}
        in_sync = {len(p["isr_nodes"]) for p in partitions}
        shown[topic["name"]] = (replicas, in_sync, min_isr[topic["name"]])
    return shown


def test_a_broker_stopped_and_brought_back_under_load_loses_no_published_event(
    hub: Hub,
) -> None:
    worker = hub.start_worker()
    place = Place(hub.admin, people=40, events=300, seed=21)
    with SteadyLoad(place, hub.partners) as load:
        load.wait_for(1 / 3)
        _stop_node(hub.cluster, 2)
        load.failed.set()  # the middle third is published with node 2 down
        load.wait_for(2 / 3)
        broker.start(
            hub.cluster.settings, nodes=SECURE_NODES, timeout_s=120, progress=lambda _: None
        )
        load.join()

    wait_for(
        "the books to settle",
        lambda: settled(worker, place),
        timeout_s=120,
    )
    eventually(assert_matches_reference, worker, place)
    # Every topic of the hub (partner, hub.*, consent, changelogs, the app's internal
    # topics) has three replicas, min.insync.replicas 2, and all three in sync again.
    wait_for(
        "node 2 back in every in-sync replica set",
        lambda: all(isr == {SECURE_NODES} for _, isr, _ in _replication(hub).values()),
        timeout_s=60,
    )
    replication = _replication(hub)
    assert {hub.topics.events, hub.topics.consent, hub.topics.schemas} <= set(replication)
    assert any("changelog" in name for name in replication)
    assert {name: (r, m) for name, (r, _, m) in replication.items()} == {
        name: ({SECURE_NODES}, "2") for name in replication
    }


class PersonReads:
    """Reads ``people`` through one worker round after round from a thread, counting the
    reads answered and failed, and who was answered."""

    def __init__(self, worker: WorkerProcess, people: list[str]) -> None:
        self.worker, self.people = worker, people
        self.answered = 0
        self.failed = 0
        self.answered_people: set[str] = set()  # who was answered at least once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="person-reads", daemon=True)

    def __enter__(self) -> PersonReads:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):  # a round every 50 ms, to leave the CPUs to the hub
            for person in self.people:
                try:
                    ok = self.worker.get(f"/v1/people/{person}", token=READER).status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    self.answered += 1
                    self.answered_people.add(person)
                else:
                    self.failed += 1


def _answers(worker: WorkerProcess, people: list[str]) -> bool:
    return all(worker.get(f"/v1/people/{p}", token=READER).status_code == 200 for p in people)


def _housing_people(place: Place, events: int) -> list[str]:
    """People in view after the first ``events`` events whom council housing (the reader's
    organisation) is involved with: its practitioners may read them."""
    early = copy.copy(place)
    early.events = place.events[:events]
    person_of = {e: person for person, ids in early.reference().items() for e in ids}
    return sorted(
        {
            person_of[draft.event_id]
            for partner, draft, _ in early.events
            if partner == "council-housing" and draft.event_id in person_of
        }
    )


def test_a_worker_killed_under_load_hands_its_partitions_to_the_other(hub: Hub) -> None:
    survivor = hub.start_worker()
    doomed = hub.start_worker()
    place = Place(hub.admin, people=40, events=300, seed=22)
    with SteadyLoad(place, hub.partners) as load:
        load.wait_for(1 / 3)
        # People in view by then, spread over the partitions (so over both workers): a read
        # of one on the other worker's partitions is routed there.
        people = _housing_people(place, len(place.events) // 3)
        assert len(people) >= 6
        wait_for(
            "the survivor to answer for the people read",
            lambda: _answers(survivor, people),
            timeout_s=60,
        )
        with PersonReads(survivor, people) as reads:
            doomed.stop(sig=signal.SIGKILL)  # kill -9: no flush, no commit, no leave
            load.join()
            wait_for(
                "the survivor to settle the books alone",
                lambda: settled(survivor, place),
                timeout_s=150,
            )
            during = (reads.answered, reads.failed, len(reads.answered_people))
            wait_for(
                "every person read answered after the takeover",
                lambda: _answers(survivor, people),
            )
    eventually(assert_matches_reference, survivor, place)
    # Reads were answered while the dead worker's partitions waited for its session to
    # expire (60 s; reads routed to it fail meanwhile), and every person answers at the end.
    answered, failed, who = during
    assert answered > 0 and who > 0, f"{answered} reads answered, {failed} failed"
    assert _answers(survivor, _housing_people(place, len(place.events)))
