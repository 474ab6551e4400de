"""Faust wiring: topics, tables and agents that carry out the gate's and the view's decisions.

Reading order: ``gate`` (partner topics → hub.events / hub.quarantine / hub.dlq), then
``release`` (consents arrive → held events are let through), then ``view`` (hub.events →
the PersonView table). The rules themselves live in ``hub.gate``, ``hub.identity`` and
``hub.view`` as pure functions; this module only moves records.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import EventT

from hub._admin import declare_topics
from hub.config import Settings
from hub.errors import InputError
from hub.gate import Decision, Outcome, admit, lawful_basis_problem
from hub.identity import resolve
from hub.metrics import Metrics
from hub.models import AuditRecord, ConsentRecord, DeadLetter, PartnerEvent, utc_now
from hub.partners import load_partners
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from hub.users import UserDirectory
from hub.view import PersonView, fold

__all__ = ["Hub"]

log = logging.getLogger(__name__)


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
    """One hub worker: the Faust app plus the services its agents and web views use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.registry = SchemaRegistry(settings)
        self.serde = Serde(self.registry)
        self.metrics = Metrics()
        self.users = UserDirectory.load(settings.users_file)
        self.partners = load_partners(settings.partners_file)
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
            store="memory://",
            datadir=str(settings.state_dir / "faust"),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            web_host=settings.web_host,
            web_port=settings.web_port,
            canonical_url=f"http://{settings.web_host}:{settings.web_port}",
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
        )
        self._define_topics()
        self._define_tables()
        self._define_agents()

    def _define_topics(self) -> None:
        app, names, n = self.app, self.topics, self.settings.partitions
        self.partner_topic_names = [names.partner(partner.id) for partner in self.partners]
        self.partner_topics = _raw_topic(app, *self.partner_topic_names)
        self.events_topic = _raw_topic(app, names.events, partitions=n)
        self.quarantine_topic = _raw_topic(app, names.quarantine, partitions=n)
        self.dlq_topic = _raw_topic(app, names.dlq, partitions=n)
        self.audit_topic = _raw_topic(app, names.audit, partitions=n)
        # Consents and held events are both keyed by consent id, so they are co-partitioned.
        self.consent_and_quarantine = _raw_topic(app, names.consent, names.quarantine)

    def prepare(self) -> None:
        """Create topics and register the schemas this worker writes, before Faust starts.

        Done up front because the registry speaks to Kafka synchronously, which must not
        happen on the event loop.
        """
        declare_topics(self.settings, self.partner_topic_names)
        self.serde.schema_for(DeadLetter.avro_schema, f"{self.topics.dlq}-value")
        self.serde.schema_for(AuditRecord.avro_schema, f"{self.topics.audit}-value")
        self.registry.subjects()  # warm the cache with every schema already registered

    def _define_tables(self) -> None:
        app, n = self.app, self.settings.partitions
        self.consents = app.GlobalTable("consents", default=None, partitions=n)
        self.identity = app.GlobalTable("identity", default=None, partitions=n)
        self.held = app.Table("held", default=None, partitions=n)
        self.views = app.Table("views", default=None, partitions=n)

    def _define_agents(self) -> None:
        self.app.agent(self.partner_topics, name="gate")(self._gate)
        self.app.agent(self.consent_and_quarantine, name="release")(self._release)
        self.app.agent(self.events_topic, name="view")(self._view)

    # -- gate ---------------------------------------------------------------------------

    def consent_of(self, consent_id: str) -> ConsentRecord | None:
        """The latest consent record the hub holds for ``consent_id``."""
        stored = self.consents.get(consent_id)
        return ConsentRecord.model_validate(stored) if stored else None

    async def _gate(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            partner = self.topics.partner_of(message.topic) or "unknown"
            self.metrics.received.labels(partner).inc()
            if self.serde.needs_lookup(message.value):
                await asyncio.to_thread(self.serde.lookup, message.value)
            decision = admit(message.value, partner, self.serde, self.consent_of, utc_now())
            await self._carry_out(decision, message)
            self.metrics.outcomes.labels(partner, decision.outcome.value).inc()
            yield None

    async def _carry_out(self, decision: Decision, message: Any) -> None:
        raw: bytes = message.value
        if decision.outcome is Outcome.ADMIT:
            assert decision.event is not None
            await self._admit(decision.event, raw)
        elif decision.outcome is Outcome.QUARANTINE:
            assert decision.event is not None
            key = decision.event.basis.consent_id or decision.event.event_id
            await self.quarantine_topic.send(
                key=key.encode(), value=raw, headers={"placehub-reason": decision.reason.encode()}
            )
        else:
            letter = DeadLetter(
                reason=decision.reason,
                source_topic=message.topic,
                source_partition=message.partition,
                source_offset=message.offset,
                original=raw or b"",
                failed_at=utc_now(),
            )
            await self.dlq_topic.send(
                key=message.key, value=self.serde.encode(letter, f"{self.topics.dlq}-value")
            )

    async def _admit(self, event: PartnerEvent, raw: bytes) -> None:
        person_id, new_tokens = resolve(event.subject.tokens, self.identity.get)
        for token in new_tokens:
            self.identity[token] = person_id
        await self.events_topic.send(key=person_id.encode(), value=raw)

    # -- release ------------------------------------------------------------------------

    async def _release(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            if message.topic == self.topics.consent:
                await self._on_consent(message)
            elif message.value is not None:
                await self._hold_or_release(message.value)
            yield None

    async def _on_consent(self, message: Any) -> None:
        try:
            consent = self.serde.decode(message.value, ConsentRecord)
        except InputError as exc:
            await self._carry_out(
                Decision(Outcome.DEAD_LETTER, reason=f"{type(exc).__name__}: {exc}"), message
            )
            return
        self.consents[consent.consent_id] = consent.model_dump(mode="json")
        held: list[str] = self.held.get(consent.consent_id) or []
        if held:
            del self.held[consent.consent_id]
            for encoded in held:
                await self._hold_or_release(base64.b64decode(encoded))

    async def _hold_or_release(self, raw: bytes) -> None:
        event = self.serde.decode(raw, PartnerEvent)  # it passed the gate's decode once already
        consent = self.consent_of(event.basis.consent_id) if event.basis.consent_id else None
        if lawful_basis_problem(event, consent, utc_now()) is None:
            self.metrics.released.inc()
            await self._admit(event, raw)
            return
        key = event.basis.consent_id or event.event_id
        held: list[str] = list(self.held.get(key) or [])
        encoded = base64.b64encode(raw).decode()
        if encoded not in held:
            self.held[key] = [*held, encoded]

    # -- view ---------------------------------------------------------------------------

    async def _view(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            assert message.key is not None, "hub.events records are always keyed by person"
            person_id = message.key.decode()
            partner_event = self.serde.decode(message.value, PartnerEvent)
            stored = self.views.get(person_id)
            current = PersonView.model_validate(stored) if stored else None
            updated = fold(current, person_id, partner_event)
            if updated is not None:
                self.views[person_id] = updated.model_dump(mode="json")
                self.metrics.view_updates.inc()
            yield None
