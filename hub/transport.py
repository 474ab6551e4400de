"""Faust's aiokafka transport, with the consumer's fetch wait a setting.

aiokafka keeps one fetch in flight per broker, asking only for the partitions that had
nothing buffered when it was built, and Faust's driver hard-codes that fetch to wait up
to 1,500 ms for data. A partition that drains in the meantime (an internal hop's topic,
typically: identity or view) is not fetched again until that request returns, so a
batch could sit for up to 1.5 s between two stages while the worker idled. A short wait
(``Settings.fetch_max_wait_ms``) bounds that stall; the price is more fetch requests
when the hub is idle.

The worker's consumer is also a *static* group member (KIP-345), named by its canonical
URL (``http://web_host:web_port``) and the topics it reads (``member_name``). A worker
killed with ``kill -9`` cannot leave the group, so a restarted dynamic member waited for
the dead one's session to expire (Faust's ``broker_session_timeout``, 60 s) before the
group rebalanced and it was healthy. A static member that comes back under the same
name replaces the dead one at once and gets its assignment back: healthy in about 3 s,
no rebalance for the other workers.

The name holds the URL because the two must change together: Faust's assignor asserts that
an assignment it receives names this worker's URL, so a worker taking over a name held
under another URL would fail in the consumer and never become healthy. The URL is also
what must already be unique among live workers (others route table reads to it); two live
workers under one name would take the membership from each other in turn. It holds the
topics because a member back under its old name gets exactly its old assignment: a
worker restarted to read a new partner's topic must join under a new name (and then waits
for the old name's session to expire, 60 s, as every restart did before).

The price: a static member does not leave the group when it stops cleanly either (aiokafka
sends no LeaveGroup for one), so a worker stopped for good (scale-down) keeps its
partitions until its session times out, 60 s, and only then are they reassigned.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import AppT, TransportT

__all__ = ["HubApp", "member_name"]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        # Faust's driver passes this to AIOKafkaConsumer as group_instance_id.
        self.app.conf.consumer_group_instance_id = member_name(self.app)
        consumer = super()._create_worker_consumer(transport)
        # AIOKafkaConsumer hands this to its Fetcher when it starts (after this returns).
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class HubApp(faust.App):
    """A Faust app whose consumer waits at most ``fetch_max_wait_ms`` per fetch and is a
    static group member, back at once after a crash (``member_name``)."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)


def member_name(app: AppT) -> str:
    """The worker's static group member name, from its canonical URL and what it reads.

    A member rejoining under its old name gets its old assignment back without a
    rebalance, so every topic the worker reads (its agents' and its tables' changelogs)
    goes into the name: a worker that now reads one more (a partner added) joins anew.
    Kafka's clients allow only ``[a-zA-Z0-9._-]`` in the name; the digest keeps it unique.
    """
    url = str(app.conf.canonical_url)
    topics = set(app.tables.changelog_topics)
    for agent in app.agents.values():
        topics.update(getattr(agent.channel, "topics", ()))
    digest = hashlib.sha256("\n".join([url, *sorted(topics)]).encode()).hexdigest()[:16]
    return f"{re.sub(r'[^a-zA-Z0-9._-]+', '_', url)}-{digest}"
