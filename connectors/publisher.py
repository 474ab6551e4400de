"""The connector SDK: validate, pseudonymise at source, Avro-encode, produce, wait for the ack.

A partner builds an ``EventDraft`` from its own record (raw identifiers included); the
``Publisher`` turns identifiers into tokens before anything leaves the process, so the
raw values never reach Kafka, a log or an error message.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Annotated

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.pseudonymise import token
from hub._admin import ensure_topic
from hub.config import Settings, load_settings
from hub.errors import BrokerError, EventRejected, InputError
from hub.models import (
    AgeBand,
    ConsentRecord,
    ConsentStatus,
    LawfulBasis,
    PartnerEvent,
    Payload,
    Subject,
    utc_now,
)
from hub.registry import SchemaRegistry
from hub.serde import AvroModel, Serde, validation_errors
from hub.topics import Topics

__all__ = ["ConsentDraft", "EventDraft", "EventTooLarge", "Publisher", "Receipt"]

Identifiers = Annotated[
    dict[str, str],
    Field(
        min_length=1, repr=False, description="scheme -> raw identifier; tokenised before sending"
    ),
]


class EventTooLarge(InputError):
    """Raised when an encoded event is larger than the broker accepts."""


class EventDraft(BaseModel):
    """An event as a partner system knows it, before pseudonymisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_ref: str = Field(repr=False)
    identifiers: Identifiers
    basis: LawfulBasis
    payload: Payload
    occurred_at: AwareDatetime
    area_code: str | None = None
    age_band: AgeBand | None = None
    event_id: str | None = None


class ConsentDraft(BaseModel):
    """A consent as a partner recorded it, before pseudonymisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consent_id: str
    identifiers: Identifiers
    purposes: list[str]
    sharing_partners: list[str]
    status: ConsentStatus = ConsentStatus.GIVEN
    expires_at: AwareDatetime | None = None


@dataclass(frozen=True)
class Receipt:
    """Proof that Kafka durably holds an event: where it was written."""

    event_id: str
    topic: str
    partition: int
    offset: int


class Publisher:
    """Publishes one partner's events and consents; returns only after Kafka acknowledged."""

    def __init__(
        self,
        partner_id: str,
        source_system: str,
        settings: Settings | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.partner_id = partner_id
        self.source_system = source_system
        self.topics = Topics(self.settings.topic_prefix)
        self._place_key = self.settings.place_key_bytes()
        self._serde = Serde(registry or SchemaRegistry(self.settings))
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                request_timeout_ms=self.settings.request_timeout_ms,
            )
        except KafkaError as exc:
            raise BrokerError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
            ) from exc

    def tokens(self, identifiers: dict[str, str]) -> list[str]:
        """The pseudonymous tokens for a partner's raw identifiers, in a stable order."""
        return sorted(
            {token(scheme, value, self._place_key) for scheme, value in identifiers.items()}
        )

    def to_event(self, draft: EventDraft) -> PartnerEvent:
        """The wire event for ``draft``: identifiers tokenised, ids and times filled in."""
        try:
            return PartnerEvent(
                event_id=draft.event_id or str(uuid.uuid4()),
                partner_id=self.partner_id,
                source_system=self.source_system,
                source_ref=draft.source_ref,
                event_type=draft.payload.event_type,
                occurred_at=_millis(draft.occurred_at),
                recorded_at=utc_now(),
                subject=Subject(
                    tokens=self.tokens(draft.identifiers),
                    area_code=draft.area_code,
                    age_band=draft.age_band,
                ),
                basis=draft.basis,
                payload=draft.payload,
            )
        except ValidationError as exc:
            raise EventRejected(validation_errors(exc)) from None

    def to_consent(self, draft: ConsentDraft) -> ConsentRecord:
        """The wire consent record for ``draft``, identifiers tokenised."""
        try:
            return ConsentRecord(
                consent_id=draft.consent_id,
                partner_id=self.partner_id,
                subject_tokens=self.tokens(draft.identifiers),
                purposes=draft.purposes,
                sharing_partners=draft.sharing_partners,
                status=draft.status,
                recorded_at=utc_now(),
                expires_at=draft.expires_at,
            )
        except ValidationError as exc:
            raise EventRejected(validation_errors(exc)) from None

    def publish(self, draft: EventDraft) -> Receipt:
        """Publish one event and wait for the broker's acknowledgement."""
        return self.publish_many([draft])[0]

    def publish_many(self, drafts: Iterable[EventDraft]) -> list[Receipt]:
        """Publish events as one batch; returns after every one is acknowledged, in order."""
        events = [self.to_event(draft) for draft in drafts]
        topic = self.topics.partner(self.partner_id)
        ensure_topic(self.settings, topic, partitions=self.settings.partitions)
        return self._produce(topic, [(e.subject.tokens[0], e.event_id, e) for e in events])

    def publish_consent(self, draft: ConsentDraft) -> Receipt:
        """Publish one consent record (keyed by consent id) and wait for the acknowledgement."""
        return self.publish_consents([draft])[0]

    def publish_consents(self, drafts: Iterable[ConsentDraft]) -> list[Receipt]:
        """Publish consent records as one batch; returns after every one is acknowledged."""
        records = [self.to_consent(draft) for draft in drafts]
        topic = self.topics.consent
        ensure_topic(self.settings, topic, partitions=self.settings.partitions, compact=True)
        return self._produce(topic, [(r.consent_id, r.consent_id, r) for r in records])

    def _produce(self, topic: str, items: list[tuple[str, str, AvroModel]]) -> list[Receipt]:
        """Send (key, id, model) items, then wait for every acknowledgement, in order."""
        pending = [(item_id, self._send(topic, key, model)) for key, item_id, model in items]
        # Send now rather than after linger_ms: the caller waits for these acks anyway, and
        # lingering put 5 ms on every call (at most ~200 one-event publishes/s; bench).
        with contextlib.suppress(KafkaTimeoutError):  # _await names the event that timed out
            self._producer.flush(timeout=self.settings.request_timeout_ms / 1000)
        return [self._await(item_id, future) for item_id, future in pending]

    def _send(self, topic: str, key: str, model: AvroModel) -> object:
        value = self._serde.encode(model, f"{topic}-value")
        try:
            return self._producer.send(topic, key=key.encode(), value=value)
        except MessageSizeTooLargeError as exc:
            raise EventTooLarge(
                f"encoded event is {len(value)} bytes, over the broker's limit"
            ) from exc
        except KafkaError as exc:
            raise BrokerError(f"could not send to {topic}: {exc}") from exc

    def _await(self, event_id: str, future: object) -> Receipt:
        try:
            metadata = future.get(timeout=self.settings.request_timeout_ms / 1000)  # type: ignore[attr-defined]
        except MessageSizeTooLargeError as exc:
            raise EventTooLarge(f"event {event_id} is over the broker's size limit") from exc
        except (KafkaTimeoutError, KafkaError) as exc:
            raise BrokerError(f"event {event_id} was not acknowledged: {exc}") from exc
        return Receipt(event_id, metadata.topic, metadata.partition, metadata.offset)

    def close(self) -> None:
        """Flush and close the producer."""
        self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
