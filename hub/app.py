"""The declaration: which topics and tables a hub worker has, and which stage reads what.

Data flow, one stage each (the rules are pure modules in ``hub.stages``; ``hub.runtime``
runs them against Faust and carries out what they decide):

- ``gate`` (partner topics): decode, check the lawful basis, count; each record to exactly
  one of identity, quarantine, DLQ.
- ``release`` (consent.records + hub.quarantine + control, all keyed by consent id): keep
  the consents table, hold quarantined events, release them when a basis arrives, drop them
  when the hold expires or consent is withdrawn, start erasure.
- ``links`` (partner.<id>.links): check partners' link assertions (their own topic, a
  lawful basis) and pass them on: under an agreement to identity, under a consent through
  the release stage, which owns the consent.
- ``identity`` (one partition, so joins are serial and deterministic): map tokens to
  people, publish events keyed by person to hub.events, hand the views their work.
- ``view`` (view topic + view transfers, partitioned by person): fold events into the
  PersonView table; apply merges, splits, erasures and retention; send each changed
  person's timeline to the alerts stage.
- ``alerts`` (alerts topic, partitioned by person): the place's alert rules over each
  changed timeline; raise, escalate and erase alerts on hub.alerts.
- ``patterns-people`` (patterns topic, partitioned by person): the cells each person is
  counted in, per open calendar window; their changes go on as deltas keyed by window.
- ``patterns`` (pattern deltas, partitioned by window): each window's true counts; what
  disclosure control lets out goes on hub.patterns.

A maintenance timer asks the stages that own them to expire consents, holds and views, and
appends the roll records that let compaction apply an erasure (``hub.runtime.rolls``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any, cast

import faust

from hub import batch
from hub._admin import declare_topics, ensure_topic
from hub.agreements import load_agreements
from hub.alerts import load_rules
from hub.batch import Op
from hub.break_glass import break_glass_topic
from hub.config import Settings
from hub.metrics import Metrics
from hub.models import (
    Alert,
    AlertFeedback,
    AuditRecord,
    BreakGlassRead,
    CollectiveResponse,
    ConsentRecord,
    DeadLetter,
    PatternCell,
    utc_now,
)
from hub.partner_join import join_registered, register_subjects
from hub.partner_registry import ensure_registry
from hub.partners import load_partners
from hub.registry import SchemaRegistry
from hub.rocksdb_store import table_store
from hub.runtime import Health, Stage, StageRunner, Stores, producer_of
from hub.runtime.commits import Commits
from hub.runtime.flow import ConsentsFirst
from hub.runtime.rolls import roll_records
from hub.runtime.transport import HubApp, faust_credentials
from hub.runtime.watchdog import Watchdog, present_on
from hub.serde import Serde
from hub.stages.alerts import AlertsStage
from hub.stages.basis import Consents
from hub.stages.context import Context, Internal
from hub.stages.gate import GateStage
from hub.stages.hops import OP
from hub.stages.identity import IdentityStage
from hub.stages.links import LinksStage
from hub.stages.pattern_people import PatternPeopleStage
from hub.stages.patterns import PatternsStage
from hub.stages.quarantine import ReleaseStage, due_checks
from hub.stages.view import ViewStage, due_sweeps
from hub.topics import Topics
from hub.users import UserDirectory

__all__ = ["Hub", "stage_context", "stage_inputs"]

log = logging.getLogger(__name__)

PRODUCER_BATCH_BYTES = 512 * 1024  # under the broker's 1 MiB record-batch limit
PRODUCER_REQUEST_BYTES = 1_048_576  # Faust's default, 1,000,000, is below a full-size event's


def faust_app(settings: Settings) -> HubApp:
    """The worker's Faust app: its broker, store, web and producer settings."""
    return HubApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        hub_settings=settings,
        store=settings.store,
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        broker_commit_interval=settings.commit_interval_s,  # Faust's default: 2.8 s
        # A batch's table writes are hundreds of records for one partition: in 16 KiB
        # batches (the default) each full batch waited a broker round trip to drain.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # A batch record holding one event of the largest size a connector sends
        # (max_event_bytes) is a little larger than the event; the broker takes 1 MiB.
        producer_max_request_size=PRODUCER_REQUEST_BYTES,
        # Faust's own pages answer without a token, with raw table values and the
        # workers' URLs: off. Table routing for the API does not need them.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )


def stage_context(settings: Settings, serde: Serde, partner_ids: Collection[str]) -> Context:
    """The stages' fixed inputs from ``settings`` and its agreement and rule files."""
    return Context(
        topics=Topics(settings.topic_prefix),
        internal=Internal(settings.app_id),
        partitions=settings.partitions,
        serde=serde,
        agreements=load_agreements(settings.agreements_dir),
        consent_retention=timedelta(days=settings.consent_retention_days),
        quarantine_hold=timedelta(seconds=settings.quarantine_hold_s),
        rules=load_rules(settings.alerts_dir, partner_ids),
        patterns_grace=timedelta(days=settings.patterns_grace_days),
        patterns=settings.patterns_enabled,
        flows_within=timedelta(days=settings.flows_within_days),
    )


def stage_inputs(ctx: Context, partner_ids: Sequence[str]) -> dict[Stage, tuple[str, ...]]:
    """Every stage a worker runs, with the topics it reads (also the bench's chain alone)."""
    names, internal = ctx.topics, ctx.internal
    consents = Consents()
    inputs: dict[Stage, tuple[str, ...]] = {
        GateStage(ctx, consents): tuple(names.partner(p) for p in partner_ids),
        # Consents, held events and their checks are all keyed by consent id.
        ReleaseStage(ctx, consents): (names.consent, names.quarantine, internal.control),
        LinksStage(ctx): tuple(names.partner_links(p) for p in partner_ids),
        IdentityStage(ctx): (internal.identity,),
        ViewStage(ctx): (internal.view, internal.transfer),
        AlertsStage(ctx): (internal.alerts,),
    }
    if ctx.patterns:  # a place may not want aggregates
        inputs[PatternPeopleStage(ctx)] = (internal.patterns,)
        inputs[PatternsStage(ctx)] = (internal.pattern_deltas,)
    return inputs


def _raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    """A topic of undecoded bytes: the hub decodes itself, so bad records reach the DLQ."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


class Hub:
    """One hub worker: the Faust app, its tables and stages, and the services the API uses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.internal = Internal(settings.app_id)
        self.registry = SchemaRegistry(settings)
        self.serde = Serde(self.registry)
        self.metrics = Metrics()
        self.partners = load_partners(settings.partners_file)  # grows: hub.partner_join
        self.partner_ids = {partner.id for partner in self.partners}  # kept with it
        self.users = UserDirectory.load(settings.users_file, self.partner_ids)
        self.health = Health()
        self.ctx = stage_context(settings, self.serde, self.partner_ids)
        self.agreements, self.rules = self.ctx.agreements, self.ctx.rules
        self.app = faust_app(settings)
        self._define_tables()
        self._define_stages()
        self.app.timer(settings.maintenance_interval_s)(self._maintain)
        self._watchdog: Watchdog | None = None
        self.app.timer(settings.watchdog_interval_s)(self._watch)

    def _define_tables(self) -> None:
        app, n = self.app, self.settings.partitions

        store = self.settings.store

        def table(name: str, **kwargs: Any) -> Any:
            return app.Table(name, default=None, **table_store(store, name), **kwargs)

        def global_table(name: str, **kwargs: Any) -> Any:
            return app.GlobalTable(name, default=None, **table_store(store, name), **kwargs)

        self.consents = global_table("consents", partitions=n)
        self.ledger = global_table("ledger", partitions=n)
        self.fates = global_table("fates", partitions=n)
        # Each stage's last offset done per input partition (hub.runtime.run: once only).
        self.marks = global_table("marks", partitions=n)
        self.held = table("held", partitions=n)
        # Keyed by raw bytes, like the hub.events records that update it, so a person hashes
        # to the same partition in the table as on the topic: table routing finds the owner.
        self.views = table("views", partitions=n, key_type=bytes)
        # Which people on a partition hold a partner's record ref: the lookup's index, kept
        # by the view stage with the views (hub.stages.refs).
        self.view_refs = table("view-refs", partitions=n, key_type=bytes)
        # Each person's alerts, keyed like the views (so on the same partition number).
        self.alerts = table("alerts", partitions=n, key_type=bytes)
        # Each person's cells in open pattern windows (and each partition's watermark), and
        # each window's true and published counts (hub.stages.pattern_people, .patterns).
        self.pattern_people = table("pattern-people", partitions=n, key_type=bytes)
        self.pattern_counts = table("pattern-counts", partitions=n, key_type=bytes)
        self.identity_tokens = table("identity-tokens", partitions=1)
        self.people = table("identity-people", partitions=1)
        # Consents withdrawn, by id: an event under one that reaches identity later is dropped.
        self.withdrawn = table("identity-withdrawn", partitions=1)
        # Joins refused because they would give a person two NHS numbers: global, so any
        # worker can list them to admins.
        self.identity_review = global_table("identity-review", partitions=1)
        # Tokens partners linked, by group: what a consent covers (hub.stages.linked).
        self.linked = global_table("linked", partitions=1)

    def _define_stages(self) -> None:
        app, names, internal, n = self.app, self.topics, self.internal, self.settings.partitions
        self.internal_partitions = {
            internal.identity: 1,  # one partition: joins are serial
            internal.view: n,
            internal.transfer: n,
            internal.control: n,
            internal.alerts: n,
            internal.patterns: n,
            internal.pattern_deltas: n,
        }
        inputs = stage_inputs(self.ctx, [p.id for p in self.partners])
        stores = Stores(
            app=app,
            tables={table.name: table for table in app.tables.values()},
            serde=self.serde,
            dlq_topic=names.dlq,
            audit_topic=names.audit,
            partitions=n,
            batch_max=self.settings.batch_max,
            batch_within_s=self.settings.batch_within_s,
            health=self.health,
            count=self.metrics.count,
            observe=self.metrics.observe,
            committed=lambda tp: cast(Any, app.consumer)._committed_offset.get(tp),
        )
        # Both grow when a partner joins a running worker (hub.partner_join).
        self.readers = {topic: stage.name for stage, topics in inputs.items() for topic in topics}
        self.streams: dict[str, faust.TopicT] = {}  # stage name -> the topics it reads
        self.metrics.declare_stages(stage.name for stage in inputs)
        self.commits = Commits(self.marks, self.readers)
        app.commits = self.commits
        for stage, topics in inputs.items():
            runner = StageRunner(stage, stores)
            self.streams[stage.name] = _raw_topic(app, *topics)
            app.agent(self.streams[stage.name], name=stage.name)(runner.agent)

    def prepare(self) -> None:
        """Create topics and register the schemas this worker writes, before Faust starts.

        Done up front because the registry speaks to Kafka synchronously, which must not
        happen on the event loop. Partners added while the hub ran join first, so Faust's
        first subscription reads their topics too.
        """
        ensure_registry(self.settings)
        join_registered(self)
        # Each partner's topics too: a partner creates none (hub.kafka_acls).
        declare_topics(self.settings, sorted(self.partner_ids), self.internal_partitions)
        # Faust creates changelogs itself, but a fresh deployment's first metadata may not
        # list them yet, and then an agent dies of PartitionsMismatch: create them first.
        n = self.settings.partitions
        for compacted in (self.topics.patterns, self.topics.responses):
            ensure_topic(self.settings, compacted, partitions=n, compact=True)
        for table in self.app.tables.values():
            name = table.changelog_topic.get_topic_name()
            partitions = table.partitions or self.settings.partitions
            ensure_topic(self.settings, name, partitions=partitions, compact=True)
        # Everything this worker encodes, so no encoding waits on the registry later: dead
        # letters, audit records, and (with each partner's subjects, below) events that
        # partners send through HTTP ingest.
        written = [(DeadLetter.avro_schema, self.topics.dlq)]
        written += [(AuditRecord.avro_schema, self.topics.audit)]
        written += [(BreakGlassRead.avro_schema, break_glass_topic(self.settings))]
        written += [(Alert.avro_schema, self.topics.alerts)]
        written += [(AlertFeedback.avro_schema, self.topics.alert_feedback)]
        written += [(PatternCell.avro_schema, self.topics.patterns)]
        written += [(CollectiveResponse.avro_schema, self.topics.responses)]
        # And what partners write through the SDK, which registers nothing (a partner may
        # not write _schemas; hub.kafka_acls): consents, and each partner's events and links.
        written += [(ConsentRecord.avro_schema, self.topics.consent)]
        for schema_name, topic in written:
            self.serde.schema_for(schema_name, f"{topic}-value")
        for partner_id in sorted(self.partner_ids):
            register_subjects(self.serde, self.topics, partner_id)
        self.registry.subjects()  # warm the cache with every schema already registered

    def crashed_agents(self) -> list[str]:
        """Agents that have crashed (Faust keeps the worker running without them)."""
        return sorted(
            name
            for name, agent in self.app.agents.items()
            if agent.crashed or any(actor.crashed for actor in getattr(agent, "_actors", ()))
        )

    async def _watch(self) -> None:
        """Read again any stream partition stuck with records after it (its module)."""
        if self.app.rebalancing or self.app.in_recovery:
            return
        if self._watchdog is None:
            self._watchdog = Watchdog(
                self.app.consumer,
                self.commits,
                lambda: set(self.health.stalled),
                self.metrics.count,
                present_on(self.settings),
                lag=self.metrics.set_lag,
                flow=ConsentsFirst(
                    self.app.consumer,
                    self.commits,
                    self.topics.consent,
                    self.settings.consent_backlog_max,
                    show=self.metrics.set_gate_paused,
                ),
            )
        await self._watchdog.look()

    async def _maintain(self) -> None:
        """Periodic checks, sent as records so the stage that owns the rows acts on them."""
        now, n = utc_now(), self.settings.partitions
        producer = producer_of(self.app)
        futures = []
        hold = self.ctx.quarantine_hold
        for op, key in due_checks(self.consents, self.held, hold, now):
            raw = key.encode()
            futures.append(
                await producer.send(
                    self.internal.control,
                    None,
                    key=raw,
                    partition=batch.partition_for(raw, n),
                    headers=[(OP, op.value.encode())],
                )
            )
        by_partition: dict[int, list[batch.Item]] = {}
        for person_id in due_sweeps(self.views, now):
            partition = batch.partition_for(person_id.encode(), n)
            by_partition.setdefault(partition, []).append(batch.Item(Op.SWEEP, person_id))
        for partition, items in by_partition.items():
            for chunk in batch.chunks(items):
                value = batch.encode(chunk)
                futures.append(await producer.send(self.internal.view, value, partition=partition))
        # So that an erasure reaches partitions nothing else is written to (hub.runtime.rolls).
        compacted = [self.topics.consent, self.topics.alerts]
        for out in roll_records(self.app.tables.values(), compacted, n):
            futures.append(
                await producer.send(out.topic, None, key=out.key, partition=out.partition)
            )
        try:
            await asyncio.gather(*futures)
        except Exception as exc:  # a check that did not go is sent again at the next interval
            log.warning("maintenance checks not all sent (%s)", type(exc).__name__)
