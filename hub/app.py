"""Faust wiring: topics, tables and agents that carry out the hub's decisions.

Data flow, one agent each (rules live in pure modules; this one only moves records).
Every record costs Faust far more than the hub's work on it, so the hot path works in
batches: the gate takes records a batch at a time, the internal hops carry one record per
batch (``hub.batch``), and table writes are staged and flushed once per batch
(``hub.staged``). Contract topics still get one record per event.

- ``gate`` (partner topics): decode, check the lawful basis (``hub.stages.gate``), count
  (``hub.stages.accounting``), and send each record to exactly one of identity, quarantine, DLQ.
- ``release`` (consent.records + hub.quarantine, both keyed by consent id): keep the
  consents table, hold quarantined events, release them when a basis arrives, drop them
  with an audit record when the hold expires or consent is withdrawn, start erasure.
- ``links`` (identity.links): validate partners' link assertions and pass them on.
- ``identity`` (one partition, so joins are serial and deterministic): map tokens to
  people (``hub.stages.identity``), publish events keyed by person to hub.events, and hand the
  views their events, merges, splits and erasures (internal view topic, by person).
- ``view`` (view topic + view transfers, partitioned by person): fold events into the
  PersonView table (``hub.stages.view``); apply merges, splits and erasures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import faust
from faust.types import EventT

from hub import batch
from hub._admin import declare_topics, ensure_topic
from hub.agreements import load_agreements
from hub.config import Settings
from hub.errors import InputError
from hub.metrics import Metrics
from hub.models import (
    AuditRecord,
    ConsentRecord,
    ConsentStatus,
    DeadLetter,
    IdentityLink,
    LinkStatus,
    PartnerEvent,
    utc_now,
)
from hub.partners import load_partners
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.staged import (
    FaustTable,
    PartitionStages,
    Record,
    StagedTable,
    as_current,
    send_records,
)
from hub.stages import accounting
from hub.stages.gate import Decision, Outcome, admit, lawful_basis_problem
from hub.stages.identity import RECORD_SOURCE, IdentityStore, forget, join, retract
from hub.stages.view import (
    PersonView,
    TimelineEntry,
    absorb,
    entry_for,
    erase_basis,
    fold,
    prune,
    split,
)
from hub.topics import Topics
from hub.transport import HubApp
from hub.users import UserDirectory

__all__ = ["Hub"]

log = logging.getLogger(__name__)

# Header names on internal records (values are ASCII; never person data beyond tokens).
OP = "placehub-op"
REASON = "placehub-reason"
SOURCE = "placehub-source"  # topic:partition:offset of the partner record, for accounting

PRODUCER_BATCH_BYTES = 512 * 1024  # under the broker's 1 MiB record-batch limit
PRODUCER_REQUEST_BYTES = 1_048_576  # Faust's default, 1,000,000, is below a full-size event's
CONSENT_CACHE = 10_000  # parsed consents kept (the gate checks one per event); bounds memory


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


def _current_partition() -> int:
    """The partition of the record an agent is processing now."""
    event = faust.current_event()
    assert event is not None, "only called while an agent processes a record"
    partition: int = event.message.partition
    return partition


def _owned_key(ledger_key: str, owned: set[tuple[str, int]]) -> bool:
    topic, _, partition = ledger_key.rpartition("|")
    return (topic, int(partition)) in owned


def _headers(message: Any) -> dict[str, bytes]:
    return {key: value for key, value in (message.headers or [])}


class Hub:
    """One hub worker: the Faust app plus the services its agents and web views use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.registry = SchemaRegistry(settings)
        self.serde = Serde(self.registry)
        self.metrics = Metrics()
        self.users = UserDirectory.load(settings.users_file)
        self.partners = load_partners(settings.partners_file)
        self.agreements = load_agreements(settings.agreements_dir)
        # Parsed consents, checked against the stored value on every use (never stale).
        self._consent_models: dict[str, tuple[dict[str, Any], ConsentRecord]] = {}
        self.app = HubApp(
            settings.app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
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
            # A batch's table writes are hundreds of records for one partition: in 16 KiB
            # batches (the default) each full batch waited a broker round trip to drain.
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            # A batch record holding one event of the largest size a connector sends
            # (max_event_bytes) is a little larger than the event; the broker takes 1 MiB.
            producer_max_request_size=PRODUCER_REQUEST_BYTES,
        )
        self._define_topics()
        self._define_tables()
        self._define_agents()
        self.metrics.watch_accounts(self.local_statuses)

    # -- set-up --------------------------------------------------------------------------

    def _define_topics(self) -> None:
        app, names, n = self.app, self.topics, self.settings.partitions
        self.partner_topic_names = [names.partner(partner.id) for partner in self.partners]
        self.partner_topics = _raw_topic(app, *self.partner_topic_names)
        self.dlq_topic = _raw_topic(app, names.dlq, partitions=n)
        self.audit_topic = _raw_topic(app, names.audit, partitions=n)
        self.consent_topic = _raw_topic(app, names.consent, partitions=n)
        self.links_topic = _raw_topic(app, names.identity_links, partitions=n)
        # Internal, carrying batches (hub.batch): identity is one partition so joins are
        # serial; the view topic is partitioned by person like hub.events, and so are the
        # transfers that move entries between people.
        self.identity_topic = _raw_topic(app, self.internal("identity"), partitions=1)
        self.view_topic_name = self.internal("view")
        self.view_topic = _raw_topic(app, self.view_topic_name, partitions=n)
        self.transfer_topic = _raw_topic(app, self.internal("view-transfer"), partitions=n)
        self.control_topic = _raw_topic(app, self.internal("release-control"), partitions=n)
        # Consents, held events and their checks are all keyed by consent id: co-partitioned.
        self.release_input = _raw_topic(
            app, names.consent, names.quarantine, self.internal("release-control")
        )
        self.view_input = _raw_topic(app, self.view_topic_name, self.internal("view-transfer"))

    def internal(self, name: str) -> str:
        """The name of one of this deployment's internal topics."""
        return f"{self.settings.app_id}-{name}"

    def _define_tables(self) -> None:
        app, n = self.app, self.settings.partitions
        self.consents = app.GlobalTable("consents", default=None, partitions=n)
        self.ledger = app.GlobalTable("ledger", default=None, partitions=n)
        self.fates = app.GlobalTable("fates", default=None, partitions=n)
        self.held = app.Table("held", default=None, partitions=n)
        # Keyed by raw bytes, like the hub.events records that update it, so a person hashes
        # to the same partition in the table as on the topic: table routing finds the owner.
        self.views = app.Table("views", default=None, partitions=n, key_type=bytes)
        self.identity_tokens = app.Table("identity-tokens", default=None, partitions=1)
        self.people = app.Table("identity-people", default=None, partitions=1)

    def _define_agents(self) -> None:
        agent = self.app.agent
        agent(self.partner_topics, name="gate")(self._gate)
        agent(self.release_input, name="release")(self._release)
        agent(self.links_topic, name="links")(self._links)
        agent(self.identity_topic, name="identity")(self._identity)
        agent(self.view_input, name="view")(self._view)
        self.app.timer(self.settings.maintenance_interval_s)(self._maintain)

    def prepare(self) -> None:
        """Create topics and register the schemas this worker writes, before Faust starts.

        Done up front because the registry speaks to Kafka synchronously, which must not
        happen on the event loop.
        """
        n = self.settings.partitions
        internal = {"identity": 1, "view": n, "view-transfer": n, "release-control": n}
        declare_topics(
            self.settings,
            self.partner_topic_names,
            {self.internal(name): count for name, count in internal.items()},
        )
        # Faust creates changelogs itself, but a fresh deployment's first metadata may not
        # list them yet, and then an agent dies of PartitionsMismatch: create them first.
        for table in self.app.tables.values():
            name = table.changelog_topic.get_topic_name()
            ensure_topic(self.settings, name, partitions=table.partitions or n, compact=True)
        for model, topic in ((DeadLetter, self.topics.dlq), (AuditRecord, self.topics.audit)):
            self.serde.schema_for(model.avro_schema, f"{topic}-value")
        self.registry.subjects()  # warm the cache with every schema already registered

    def crashed_agents(self) -> list[str]:
        """Agents that have crashed (Faust keeps the worker running without them)."""
        return sorted(
            name
            for name, agent in self.app.agents.items()
            if agent.crashed or any(actor.crashed for actor in getattr(agent, "_actors", ()))
        )

    # -- shared steps --------------------------------------------------------------------

    def consent_of(
        self, consent_id: str, consents: Mapping[str, Any] | None = None
    ) -> ConsentRecord | None:
        """The consent the hub holds for ``consent_id`` (None if unknown or withdrawn);
        ``consents`` is the table as a batch in progress sees it (default: as stored)."""
        stored = (self.consents if consents is None else consents).get(consent_id)
        if not stored or stored.get("withdrawn"):
            return None
        cached = self._consent_models.get(consent_id)
        if cached is not None and cached[0] == stored:
            return cached[1]
        if len(self._consent_models) >= CONSENT_CACHE:
            self._consent_models.clear()
        consent = ConsentRecord.model_validate(stored)
        self._consent_models[consent_id] = (stored, consent)
        return consent

    def basis_problem(
        self, event: PartnerEvent, consents: Mapping[str, Any] | None = None
    ) -> str | None:
        """Why ``event`` has no lawful basis now, or None (``consents`` as in consent_of)."""
        consent_id = event.basis.consent_id
        table = self.consents if consents is None else consents
        stored = table.get(consent_id) if consent_id else None
        if stored and stored.get("withdrawn"):
            return f"consent {consent_id} has been withdrawn"
        consent = self.consent_of(consent_id, table) if consent_id else None
        return lawful_basis_problem(event, consent, self.agreements, utc_now())

    def _count(
        self, ledger: MutableMapping[str, Any], message: Any, partner: str, flows: list[str]
    ) -> None:
        """Count what the gate did with one record, once, even if it is read again."""
        key = accounting.ledger_key(message.topic, message.partition)
        entry = ledger.get(key)
        if not accounting.already_counted(entry, message.offset):
            ledger[key] = accounting.count(entry, message.offset, partner, flows)

    def local_books(self) -> dict[str, dict[str, int]]:
        """Each declared partner's books over the partitions this worker owns (its share)."""
        owned = {(tp.topic, tp.partition) for tp in self.app.assignor.assigned_actives()}
        views, consent = self.view_topic_name, self.topics.consent
        fates = {k: v for k, v in self.fates.items() if v}
        books = accounting.local_books(
            [v for k, v in self.ledger.items() if v and _owned_key(k, owned)],
            [v for v in self.views.values() if v and (views, v["partition"]) in owned],
            [v for v in self.held.values() if v and (consent, v[0]["partition"]) in owned],
            [f for f in fates.values() if (f["topic"], f["partition"]) in owned],
            fates,
        )
        empty = dict.fromkeys(accounting.BOOKS, 0)
        return {p.id: books.get(p.id, empty) for p in self.partners}

    def local_statuses(self) -> dict[str, dict[str, int | bool]]:
        """Every partner's books over this worker's partitions (for its metrics)."""
        return {p: accounting.partner_status([b]) for p, b in self.local_books().items()}

    def _set_fate(self, source: str, fate: str, partner: str) -> None:
        event = faust.current_event()
        assert event is not None, "fates are set while processing a record"
        # Transfers, holds and checks are co-partitioned with the view topic or consents.
        anchor = {
            self.internal("view-transfer"): self.view_topic_name,
            self.topics.quarantine: self.topics.consent,
            self.internal("release-control"): self.topics.consent,
        }
        topic = anchor.get(event.message.topic, event.message.topic)
        self.fates[source] = {
            "fate": fate,
            "partner": partner,
            "topic": topic,
            "partition": event.message.partition,
        }

    async def _audit(self, action: str, person_id: str | None, actor: str = "hub") -> None:
        record = AuditRecord(
            audit_id=str(uuid.uuid4()),
            at=utc_now(),
            actor=actor,
            role="system",
            action=action,
            person_id=person_id,
            outcome="ok",
        )
        value = self.serde.encode(record, f"{self.topics.audit}-value")
        await self.audit_topic.send(key=(person_id or action).encode(), value=value)

    async def _dead_letter(self, message: Any, reason: str) -> None:
        letter = DeadLetter(
            reason=reason,
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            original=message.value or b"",
            failed_at=utc_now(),
        )
        value = self.serde.encode(letter, f"{self.topics.dlq}-value")
        await self.dlq_topic.send(key=message.key, value=value)

    async def _to_identity(self, items: list[batch.Item]) -> None:
        """Hand work to identity, as few batch records as fit (one partition: in order)."""
        for chunk in batch.chunks(items):
            await self.identity_topic.send(value=batch.encode(chunk))

    async def _to_views(self, items: list[batch.Item]) -> None:
        """Hand work to the views, one batch record per view partition, in order per person."""
        by_partition: dict[int, list[batch.Item]] = defaultdict(list)
        for item in items:
            by_partition[batch.partition_for(item.key.encode(), self.settings.partitions)].append(
                item
            )
        for partition, part in by_partition.items():
            for chunk in batch.chunks(part):
                await self.view_topic.send(value=batch.encode(chunk), partition=partition)

    # -- gate ----------------------------------------------------------------------------

    def _batches(self, stream: faust.StreamT[bytes]) -> AsyncIterator[Sequence[EventT[bytes]]]:
        """The stream's records a batch at a time (``batch_max``, or what ``batch_within_s``
        brought); Faust acks them once the batch's work is done."""
        take = cast(faust.Stream[bytes], stream).take_events
        return take(self.settings.batch_max, within=self.settings.batch_within_s)

    async def _gate(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in self._batches(stream):
            await self._gate_batch(events)
            yield None

    async def _gate_batch(self, events: Sequence[EventT[bytes]]) -> None:
        """Decide a batch of partner records; admitted ones go to identity in one record."""
        admitted: list[batch.Item] = []
        ledger = PartitionStages(self.ledger)
        outcomes: Counter[tuple[str, str]] = Counter()
        for event in events:
            message = event.message
            partner = self.topics.partner_of(message.topic) or "unknown"
            if self.serde.needs_lookup(message.value):
                await asyncio.to_thread(self.serde.lookup, message.value)
            decision = admit(message.value, partner, self.serde, self.basis_problem)
            source = accounting.source_of(message.topic, message.partition, message.offset)
            if decision.outcome is Outcome.ADMIT:
                assert decision.event is not None
                admitted.append(_event_item(decision.event, message.value, source))
            else:
                await self._turn_away(decision, message, source)
            dead = decision.outcome is Outcome.DEAD_LETTER
            self._count(
                ledger.stage(event), message, partner, ["received"] + dead * ["dead_lettered"]
            )
            outcomes[partner, decision.outcome.value] += 1
        await self._to_identity(admitted)
        await ledger.flush()  # after the records went on: a crash in between recounts none
        for (partner, outcome), n in outcomes.items():
            self.metrics.outcomes.labels(partner, outcome).inc(n)

    async def _turn_away(self, decision: Decision, message: Any, source: str) -> None:
        """To quarantine without a basis (yet); to the DLQ if it cannot be read."""
        if decision.outcome is Outcome.QUARANTINE:
            assert decision.event is not None
            basis = decision.event.basis
            key = basis.consent_id or basis.agreement_id or decision.event.event_id
            headers = [(REASON, decision.reason.encode()), (SOURCE, source.encode())]
            raw_key = key.encode()
            partition = batch.partition_for(raw_key, self.settings.partitions)
            record = (raw_key, message.value, headers)
            await send_records(self.app, self.topics.quarantine, partition, [record])
        else:
            await self._dead_letter(message, decision.reason)

    # -- release -------------------------------------------------------------------------

    async def _release(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in self._batches(stream):
            consents, held = PartitionStages(self.consents), PartitionStages(self.held)
            to_identity: list[batch.Item] = []
            for event in events:  # keyed by consent id: a record's partition is its key's
                with as_current(event):
                    state = _Release(consents.stage(event), held.stage(event), to_identity)
                    await self._release_one(state, event.message)
            # Released events go on before their holds go: a crash in between releases
            # them again (the view knows their sources), it never loses one.
            await self._to_identity(to_identity)
            await consents.flush()
            await held.flush()
            yield None

    async def _release_one(self, state: _Release, message: Any) -> None:
        headers = _headers(message)
        op = headers.get(OP, b"").decode()
        key = (message.key or b"").decode()
        if message.topic == self.topics.consent:
            misplaced = _misplaced(message, self.settings.partitions)
            if misplaced:
                await self._dead_letter(message, misplaced)
            else:
                await self._on_consent(state, message)
        elif op == "expire-consent":
            consent = self.consent_of(key, state.consents)
            if consent is not None and not consent.is_live(utc_now()):
                await self._withdraw(state, consent)
        elif op == "expire-holds":
            await self._drop_expired_holds(state, key)
        elif message.value is not None:
            self._hold_or_release(state, message.value, headers.get(SOURCE, b"").decode())

    async def _on_consent(self, state: _Release, message: Any) -> None:
        try:
            consent = self.serde.decode(message.value, ConsentRecord)
        except InputError as exc:
            await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
            return
        if consent.status is ConsentStatus.WITHDRAWN:
            await self._withdraw(state, consent)
            return
        state.consents[consent.consent_id] = consent.model_dump(mode="json")
        held = state.held.pop(consent.consent_id, None) or []
        for item in held:
            self._hold_or_release(state, base64.b64decode(item["raw"]), item["source"])

    async def _withdraw(self, state: _Release, consent: ConsentRecord) -> None:
        """Consent withdrawn or expired: forget it, drop what it held, erase what it shared."""
        consent_id = consent.consent_id
        state.consents[consent_id] = {"withdrawn": True}
        for item in state.held.pop(consent_id, None) or []:
            await self._drop_held(item, "quarantine.drop.withdrawn")
        state.to_identity.append(batch.Item("erase", consent_id, tokens=consent.subject_tokens))

    def _hold_or_release(self, state: _Release, raw: bytes, source: str) -> None:
        """Release a quarantined event if it now has a basis, else hold it (once)."""
        event = self.serde.decode(raw, PartnerEvent)  # it passed the gate's decode once already
        if self.basis_problem(event, state.consents) is None:
            state.to_identity.append(_event_item(event, raw, source))
            self.metrics.released.inc()
            return
        key = event.basis.consent_id or event.basis.agreement_id or event.event_id
        held: list[dict[str, str]] = list(state.held.get(key) or [])
        if all(item["event_id"] != event.event_id for item in held):
            item = {
                "event_id": event.event_id,
                "partner_id": event.partner_id,
                "raw": base64.b64encode(raw).decode(),
                "source": source,
                "held_at": utc_now().isoformat(),
                "partition": _current_partition(),
            }
            state.held[key] = [*held, item]

    async def _drop_expired_holds(self, state: _Release, key: str) -> None:
        hold = timedelta(seconds=self.settings.quarantine_hold_s)
        now = utc_now()
        held = state.held.get(key) or []
        expired = [i for i in held if now - datetime.fromisoformat(i["held_at"]) >= hold]
        if not expired:
            return
        kept = [i for i in held if i not in expired]
        if kept:
            state.held[key] = kept
        else:
            del state.held[key]
        for item in expired:
            await self._drop_held(item, "quarantine.drop.expired")

    async def _drop_held(self, item: dict[str, str], action: str) -> None:
        self._set_fate(item["source"], "dropped", item["partner_id"])
        await self._audit(action, None)

    async def _maintain(self) -> None:
        """Periodic checks, sent as records so the owning agent acts on them."""
        now = utc_now()
        for consent_id, stored in list(self.consents.items()):
            expires = stored.get("expires_at") if stored else None
            if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
                await self.control_topic.send(
                    key=consent_id.encode(), value=None, headers={OP: b"expire-consent"}
                )
        hold = timedelta(seconds=self.settings.quarantine_hold_s)
        for key, held in list(self.held.items()):
            if any(now - datetime.fromisoformat(i["held_at"]) >= hold for i in held or []):
                await self.control_topic.send(
                    key=key.encode(), value=None, headers={OP: b"expire-holds"}
                )

    # -- identity ------------------------------------------------------------------------

    async def _links(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            try:
                link = self.serde.decode(message.value, IdentityLink)
            except InputError as exc:
                await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
            else:
                await self._to_identity([batch.Item("link", link.link_id, raw=message.value)])
            yield None

    async def _identity(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            store = IdentityStore(StagedTable(self.identity_tokens), StagedTable(self.people))
            published: dict[int, list[Record]] = defaultdict(list)
            for_views: list[batch.Item] = []
            for item in batch.decode(event.message.value):
                if item.op == "event":
                    change = join(store, item.tokens, RECORD_SOURCE)
                    assert change.person_id is not None
                    for_views += _merges(change.merged, change.person_id)
                    key = change.person_id.encode()
                    partition = batch.partition_for(key, self.settings.partitions)
                    published[partition].append((key, item.raw, [(SOURCE, item.source.encode())]))
                    for_views.append(replace(item, key=change.person_id, tokens=[]))
                elif item.op == "link":
                    for_views += self._link(store, self.serde.decode(item.raw, IdentityLink))
                elif item.op == "erase":
                    basis = f"consent:{item.key}"
                    for_views += [
                        batch.Item("erase", p, arg=basis) for p in forget(store, item.tokens)
                    ]
            for table in (store.token_person, store.people):
                assert isinstance(table, StagedTable)
                await table.flush(event)
            for partition, records in published.items():
                await send_records(self.app, self.topics.events, partition, records)
            await self._to_views(for_views)
            yield None

    def _link(self, store: IdentityStore, link: IdentityLink) -> list[batch.Item]:
        """Join or split people on a partner's link assertion; what the views must do."""
        evidence = f"link:{link.link_id}"  # how each link was made stays on the edge
        if link.status is LinkStatus.ASSERTED:
            method = f"{evidence}:{link.partner_id}:{link.method.value.lower()}"
            change = join(store, link.tokens, method)
            return _merges(change.merged, change.person_id)
        change = retract(store, link.tokens[0], link.tokens[1], evidence)
        return [
            batch.Item("split", old, arg=json.dumps(parts)) for old, parts in change.splits.items()
        ]

    # -- view ----------------------------------------------------------------------------

    def view_of(self, person_id: str) -> PersonView | None:
        """The stored view of ``person_id`` (on the worker that owns it)."""
        stored = self.views.get(person_id.encode())
        return PersonView.model_validate(stored) if stored else None

    async def _view(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            views = _ViewBatch(self.views)
            if message.topic == self.view_topic_name:
                for item in batch.decode(message.value):
                    await self._view_item(views, item)
            else:  # a transfer: entries of a person merged or split into this one
                assert message.key is not None, "transfers are keyed by person"
                person_id = message.key.decode()
                entries = [
                    TimelineEntry.model_validate(e) for e in json.loads(message.value or b"[]")
                ]
                views.put(person_id, absorb(views.get(person_id), person_id, entries))
            await views.flush(event)
            yield None

    async def _view_item(self, views: _ViewBatch, item: batch.Item) -> None:
        person_id = item.key
        if item.op == "event":
            entry = entry_for(self.serde.decode(item.raw, PartnerEvent), item.source)
            updated, _ = fold(views.get(person_id), person_id, entry)
            if updated is not None:
                views.put(person_id, prune(updated, utc_now(), self._retention))
                self.metrics.view_updates.inc()
        elif item.op == "merge":
            view = views.get(person_id)
            views.put(person_id, None)
            if view is not None:
                await self._transfer(item.arg, view.entries)
        elif item.op == "split":
            await self._split(views, person_id, json.loads(item.arg))
        elif item.op == "erase":
            await self._erase(views, person_id, item.arg)

    def _retention(self, basis: str) -> timedelta:
        return self.agreements.retention(
            basis, timedelta(days=self.settings.consent_retention_days)
        )

    async def _transfer(self, into: str, entries: list[TimelineEntry]) -> None:
        payload = [e.model_dump(mode="json") for e in entries]
        await self.transfer_topic.send(key=into.encode(), value=json.dumps(payload).encode())

    async def _split(self, views: _ViewBatch, person_id: str, parts: dict[str, list[str]]) -> None:
        view = views.get(person_id)
        if view is None:
            return
        if person_id not in parts:
            views.put(person_id, None)
        for new_id, entries in split(view, parts).items():
            if new_id == person_id:
                views.put(person_id, PersonView(person_id=person_id, entries=entries))
            elif entries:
                await self._transfer(new_id, entries)

    async def _erase(self, views: _ViewBatch, person_id: str, basis: str) -> None:
        view = views.get(person_id)
        if view is None:
            return
        remaining, removed = erase_basis(view, basis)
        for entry in removed:  # fates first: a crash in between must not lose a record
            for source in entry.sources:
                self._set_fate(source, "erased", entry.partner_id)
        views.put(person_id, remaining)
        await self._audit("person.erase", person_id)


@dataclass
class _Release:
    """What one release batch sees and does: staged consents and holds, work for identity."""

    consents: MutableMapping[str, Any]
    held: MutableMapping[str, Any]
    to_identity: list[batch.Item]


def _misplaced(message: Any, partitions: int) -> str:
    """Why a keyed record is on the wrong partition (or ''): consents must meet the events
    they release, which the hub partitions with Kafka's default (murmur2) partitioner."""
    expected = batch.partition_for(message.key or b"", partitions)
    if message.partition == expected:
        return ""
    return (
        f"consent record is on partition {message.partition} but its key belongs on partition "
        f"{expected}: produce consent.records with Kafka's default (murmur2) partitioner "
        "(librdkafka clients: partitioner=murmur2_random)"
    )


def _event_item(event: PartnerEvent, raw: bytes | None, source: str) -> batch.Item:
    """An admitted event, as work for identity (which needs only its tokens)."""
    return batch.Item("event", event.event_id, source=source, tokens=event.subject.tokens, raw=raw)


def _merges(merged: list[str], into: str | None) -> list[batch.Item]:
    """Tell the views of people merged into ``into`` to hand their entries over."""
    assert into is not None or not merged
    return [batch.Item("merge", old, arg=into or "") for old in merged]


class _ViewBatch:
    """The views one batch record touches, as models: read once, written back once."""

    def __init__(self, table: FaustTable) -> None:
        self.stored = StagedTable(table)
        self.models: dict[str, PersonView | None] = {}
        self.changed: set[str] = set()

    def get(self, person_id: str) -> PersonView | None:
        if person_id not in self.models:
            stored = self.stored.get(person_id.encode())
            self.models[person_id] = PersonView.model_validate(stored) if stored else None
        return self.models[person_id]

    def put(self, person_id: str, view: PersonView | None) -> None:
        self.models[person_id] = view
        self.changed.add(person_id)

    async def flush(self, event: EventT[bytes]) -> None:
        """Write the changed views (with the partition that owns them, for accounting)."""
        for person_id in self.changed:
            view, key = self.models[person_id], person_id.encode()
            if view is None:
                self.stored.pop(key, None)
            else:
                partition = event.message.partition
                self.stored[key] = {**view.model_dump(mode="json"), "partition": partition}
        await self.stored.flush(event)
