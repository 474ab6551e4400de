"""Faust's aiokafka transport, with the consumer's fetch wait a setting, static group
membership, and commits that follow the stages' marks.

A stream partition is committed only up to the first offset its stage has not done
(``hub.runtime.commits`` says why Faust's own figure is not safe): ``_Consumer._new_offset``
is the one place Faust asks for it.

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
worker restarted to read a new partner's topic must join under a new name (after a
``kill -9`` it then waits for the old name's session to expire, 60 s; after a clean stop
the old name has already left).

aiokafka sends no LeaveGroup for a static member, even when it stops cleanly, and its
LeaveGroup (v0-v1) cannot name one. Left at that, a worker stopped for good (scale-down)
would keep its partitions for 60 s, and ``placehub replay`` would refuse for 60 s after the
last worker stopped. So once the consumer has stopped (it can no longer rejoin), the
consumer thread removes it with KIP-345's LeaveGroup by instance id (``leave_group``,
kafka-python's admin client, in a thread): the group forgets it at once, and a restart is
a fresh join, as quick as a static rejoin (about 3 s either way). Only a worker that did
not stop cleanly (``kill -9``, a crash, a lost host) still holds its membership until its
session expires; if it comes back under its name within that time it takes it over.

Its producer is idempotent (``_Producer``), acks=all: Faust's driver asks aiokafka for
idempotence only inside a transaction (``Producer._settings_extra``), and the hub uses
none, so a retried send after a lost acknowledgement could write a stage's output twice.
Its security (SASL, TLS) reaches every consumer and producer the driver makes through
the app's ``broker_credentials`` (``faust_credentials``): the driver's
``credentials_to_aiokafka_auth`` passes SASL and SSL credentials on whole (mechanism as
named, SCRAM-SHA-512 included, username, password, ``ssl_context``), so nothing needs
working around there. Faust calls the protocol SASL_SSL when the SASL credentials carry
an ``ssl_context`` and SASL_PLAINTEXT when not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, AppT, TransportT
from faust.types.auth import CredentialsT
from kafka import KafkaAdminClient
from kafka.admin import MemberToRemove
from kafka.errors import KafkaError, NoError

from hub.config import Settings
from hub.kafka_clients import DURABLE_PRODUCER, kafka_python_options, ssl_context
from hub.runtime.commits import Commits

__all__ = ["DurableApp", "HubApp", "faust_credentials", "leave_group", "member_name"]

log = logging.getLogger(__name__)

# A clean stop waits at most about this long for each step of leaving (connect, find the
# group's coordinator, LeaveGroup) before it gives up and leaves the member to its session.
LEAVE_TIMEOUT_MS = 5_000
_STAYS = "%s stays in group %s until its session expires: %s"


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        # Faust's driver passes this to AIOKafkaConsumer as group_instance_id.
        self.app.conf.consumer_group_instance_id = member_name(self.app)
        consumer = super()._create_worker_consumer(transport)
        # AIOKafkaConsumer hands this to its Fetcher when it starts (after this returns).
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer

    async def on_thread_stop(self) -> None:
        # Read before the consumer stops: aiokafka forgets its member id as it closes.
        coordinator = getattr(self._consumer, "_coordinator", None)
        member_id = getattr(coordinator, "member_id", "")
        instance_id = getattr(self._consumer, "_group_instance_id", None)
        await super().on_thread_stop()  # the consumer has stopped: no heartbeat, no rejoin
        if coordinator is None or not member_id or instance_id is None:
            return  # never joined, or not a static member (that one left by itself)
        settings: Settings = self.app.hub_settings  # type: ignore[attr-defined]
        group_id = coordinator.group_id
        try:
            await asyncio.to_thread(leave_group, settings, group_id, member_id, instance_id)
        except Exception as exc:  # an escape would stop the thread's shutdown half-way
            log.exception(_STAYS, instance_id, group_id, repr(exc))


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        """Where ``tp`` may be committed to: for a stream partition, the end of what its
        stage has done (``hub.runtime.commits``), not the end of what Faust acked."""
        offset: int | None = super()._new_offset(tp)  # Faust's own (it trims its ack list)
        commits: Commits | None = getattr(self.app, "commits", None)
        if commits is None or not commits.covers(tp):
            return offset
        return commits.commit_to(tp, self._committed_offset[tp], offset)


class _Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        # Faust's own asks for idempotence only in a transaction (the module docstring).
        return {**super()._settings_extra(), **DURABLE_PRODUCER}


class _DurableTransport(driver.Transport):
    Producer = _Producer


class _Transport(_DurableTransport):
    Consumer = _Consumer


class DurableApp(faust.App):
    """A Faust app whose producer is idempotent, acks=all (the module docstring): the
    benchmarks' bare Faust floor, and the base of ``HubApp``."""

    def _new_transport(self) -> TransportT:
        return _DurableTransport(self.conf.broker_consumer, self)


class HubApp(DurableApp):
    """A Faust app whose consumer waits at most ``fetch_max_wait_ms`` per fetch, is a
    static group member, back at once after a crash (``member_name``), and commits stream
    partitions only as far as ``commits`` allows; its producer is idempotent.
    ``hub_settings`` are what its own side clients (``leave_group``) connect with."""

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int, hub_settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.hub_settings = hub_settings
        self.commits: Commits | None = None  # set once the stages are declared

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


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """A Faust app's ``broker_credentials`` from the settings: None for PLAINTEXT."""
    context = ssl_context(settings) if settings.uses_tls else None
    if settings.uses_sasl:
        return SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return None if context is None else SSLCredentials(context)


def leave_group(settings: Settings, group_id: str, member_id: str, instance_id: str) -> bool:
    """Remove a stopped static member from its group now, not when its session expires;
    True if the broker removed it.

    aiokafka sends no LeaveGroup for a static member, and its LeaveGroup (v0-v1) cannot
    name an instance id anyway: this sends KIP-345's (v3+) through kafka-python's admin
    client. The member id is sent too, so the broker refuses (FENCED_INSTANCE_ID) to remove
    a newer process that has already rejoined under the same name. Blocks (each step up to
    ``LEAVE_TIMEOUT_MS``); a broker error is logged, not raised: the session still expires.
    """
    member = MemberToRemove(member_id=member_id, group_instance_id=instance_id)
    try:
        admin = KafkaAdminClient(
            **kafka_python_options(settings),
            client_id=f"{group_id}-leave",
            bootstrap_timeout_ms=LEAVE_TIMEOUT_MS,
            request_timeout_ms=LEAVE_TIMEOUT_MS,
        )
    except KafkaError as exc:
        log.warning(_STAYS, instance_id, group_id, repr(exc))
        return False
    try:
        errors = admin.remove_group_members(group_id, [member])
    except KafkaError as exc:
        log.warning(_STAYS, instance_id, group_id, repr(exc))
        return False
    finally:
        admin.close()
    error = next(iter(errors.values()), None)  # one member asked, one answer
    if error is NoError:
        log.info("left group %s as %s", group_id, instance_id)
        return True
    answer = getattr(error, "__name__", "no answer for the member")
    log.warning(_STAYS, instance_id, group_id, answer)
    return False
