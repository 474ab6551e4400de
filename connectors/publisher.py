"""The connector SDK: validate, pseudonymise at source, Avro-encode, produce, wait for the ack.

A partner builds an ``EventDraft`` from its own record (raw identifiers included); the
``Publisher`` turns identifiers into tokens before anything leaves the process, so the
raw values never reach Kafka, a log or an error message.

Failures, by what the caller does next:

- ``EventRejected`` (``InvalidEvent``): the draft is wrong; ``errors`` lists
  (JSON pointer, message). Subclasses: ``NoConsentReference`` (no consent or agreement
  named) and ``EventTooLarge`` (over ``max_event_bytes``). Fix the record; never retried.
- ``BrokerError`` (``BrokerUnavailable``): Kafka did not acknowledge after every retry;
  nothing is lost by trying the same drafts again later (event ids are fixed first).
- ``ConfigError``: the deployment is wrong and nothing was sent; an operator must fix it.
  At start-up: a missing, short or test place key. At the first publish: ``UnknownPartner``,
  the partner's topic does not exist (the hub has not onboarded it; a connector creates no
  topic, so it needs no admin rights on Kafka).

Schemas: records are framed with the id of the schema this package carries (ids are
fingerprints, ``hub.schema_files``), so the SDK neither reads nor writes ``_schemas``: the
hub's workers register what partners write. Pass the hub's ``SchemaRegistry`` as
``registry`` to register the subjects from here instead (the hub's own tests do).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from connectors.delivery import Delivery, EventTooLarge, MissingTopic, Outgoing, Receipt
from connectors.pseudonymise import SCHEMES, IdentifierError, PlaceKey, load_place_key, token
from hub.config import Settings, load_settings
from hub.errors import BrokerError, ConfigError, EventRejected
from hub.models import (
    AgeBand,
    BasisKind,
    ConsentRecord,
    ConsentStatus,
    IdentityLink,
    LawfulBasis,
    LinkMethod,
    LinkStatus,
    PartnerEvent,
    Payload,
    Subject,
    utc_now,
)
from hub.schema_files import LocalSchemas
from hub.serde import FIELD_NAME, AvroModel, SchemaSource, Serde, validation_errors
from hub.topics import Topics

__all__ = [
    "ConsentDraft",
    "EventDraft",
    "EventTooLarge",
    "LinkDraft",
    "NoConsentReference",
    "Publisher",
    "Receipt",
    "UnknownPartner",
    "draft_errors",
    "frame_event",
    "require_basis",
    "require_known_partner",
    "require_partner_topics",
]

Identifiers = Annotated[
    dict[str, str],
    Field(
        min_length=1, repr=False, description="scheme -> raw identifier; tokenised before sending"
    ),
]

_SEPARATORS = re.compile(r"[\s-]")  # what an identifier may be written with
TOKENS_KEPT = 4096  # identifiers' tokens a publisher keeps (about 1 MB)
NO_BASIS = "every event needs a lawful basis: a consent id, or a data-sharing agreement id"
# A key written in a body that looks like a field name may be named in an error; any other
# (an identifier sent as a key, say) is not echoed.
_REF_REPEATS_IDENTIFIER = (
    "repeats one of the event's identifiers, and travels in clear: use the record's own "
    "reference (the identifier goes only in identifiers, as a token)"
)


class UnknownPartner(ConfigError):
    """Raised when a connector publishes for a partner the hub has not onboarded: its topic
    does not exist (the hub creates it when it onboards the partner; a connector may not)."""

    def __init__(self, partner_id: str, topic: str) -> None:
        super().__init__(
            f"partner {partner_id!r} is not onboarded: its topic {topic} does not exist; "
            "ask the hub's admin to onboard it (the operations guide, 'Onboarding a partner')"
        )
        self.partner_id = partner_id
        self.topic = topic


def require_known_partner(settings: Settings, partner_id: str) -> None:
    """Raise ``UnknownPartner`` unless the hub onboarded ``partner_id`` (its topic exists);
    a connector that reads files first checks this before it reads any."""
    with Delivery(settings, attempts=1) as delivery:
        require_partner_topics(
            delivery, partner_id, {Topics(settings.topic_prefix).partner(partner_id)}
        )


def require_partner_topics(delivery: Delivery, partner_id: str, topics: set[str]) -> None:
    """``Delivery.require_topics`` in a partner's terms: ``UnknownPartner`` for a topic the
    hub has not made, ``BrokerError`` if Kafka cannot be asked."""
    try:
        delivery.require_topics(topics)
    except MissingTopic as exc:
        raise UnknownPartner(partner_id, exc.topic) from None
    except BrokerError as exc:
        raise BrokerError(f"cannot ask Kafka for {partner_id}'s topics: {exc}") from None


class NoConsentReference(EventRejected):
    """Raised when an event names neither a consent nor a data-sharing agreement."""

    def __init__(self, pointer: str = "/basis") -> None:
        super().__init__([(pointer, NO_BASIS)])


def require_basis(basis: Any, pointer: str = "/basis") -> None:
    """Raise ``NoConsentReference`` unless ``basis`` (a model or a dict) names its basis."""
    if isinstance(basis, LawfulBasis):
        basis = basis.model_dump(mode="json")
    if not isinstance(basis, Mapping):
        raise NoConsentReference(pointer)
    kind = basis.get("kind")
    named = basis.get("agreement_id") if kind == BasisKind.AGREEMENT else basis.get("consent_id")
    if kind in (BasisKind.CONSENT, BasisKind.AGREEMENT) and not named:
        raise NoConsentReference(pointer)


class EventDraft(BaseModel):
    """An event as a partner system knows it, before pseudonymisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_ref: str = Field(repr=False)
    identifiers: Identifiers
    basis: LawfulBasis | None = None
    payload: Payload
    occurred_at: AwareDatetime
    area_code: str | None = None
    age_band: AgeBand | None = None
    event_id: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> EventDraft:
        """A draft from plain data; ``EventRejected`` (JSON pointers) if it is not one."""
        require_basis(data.get("basis"))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise EventRejected(draft_errors(exc)) from None


def draft_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """RFC 6901 pointers and messages for a draft, no input value echoed; the payload's
    union tag is left out of the pointer (``/payload/kind``, as the partner wrote it)."""
    errors: list[tuple[str, str]] = []
    for err in exc.errors(include_input=False):
        loc = [str(part).replace("~", "~0").replace("/", "~1") for part in err["loc"]]
        if len(loc) > 2 and loc[0] == "payload":
            del loc[1]  # the discriminator's branch name, not a field the partner wrote
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and not FIELD_NAME.fullmatch(loc[-1]):
            loc[-1] = "-"  # an unknown key that is not a field's name may be a value: not echoed
            message = "an unknown key (not a field's name; not repeated here) is not allowed"
        if err["type"] == "union_tag_invalid":
            message = f"unknown family; expected one of {err.get('ctx', {}).get('expected_tags')}"
        errors.append(("".join("/" + part for part in loc), message))
    return errors


class ConsentDraft(BaseModel):
    """A consent as a partner recorded it, before pseudonymisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consent_id: str
    identifiers: Identifiers
    purposes: list[str]
    sharing_partners: list[str]
    status: ConsentStatus = ConsentStatus.GIVEN
    expires_at: AwareDatetime | None = None


class LinkDraft(BaseModel):
    """Two identifiers a partner holds for one person (or the retraction of that link)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link_id: str
    identifiers: Annotated[
        list[tuple[str, str]],
        Field(min_length=2, max_length=2, repr=False, description="two (scheme, raw value)"),
    ]
    method: LinkMethod = LinkMethod.SAME_RECORD
    retracted: bool = False
    # Required to assert: a consent that covers one of the two identifiers and shares with
    # this partner, or an agreement it signed. A retraction may name the assertion's basis
    # (under a consent it then stays in order with the assertion) or none.
    basis: LawfulBasis | None = None


def frame_event(serde: Serde, topics: Topics, event: PartnerEvent, max_bytes: int) -> Outgoing:
    """``event`` encoded for its partner's topic, keyed by its first token, size-checked."""
    value = serde.encode(event, f"{topics.partner(event.partner_id)}-value")
    if len(value) > max_bytes:
        raise EventTooLarge(len(value), max_bytes)
    return Outgoing(
        topics.partner(event.partner_id), event.subject.tokens[0].encode(), value, event.event_id
    )


class Publisher:
    """Publishes one partner's events and consents; returns only after Kafka acknowledged.

    ``attempts`` and ``backoff_ms`` bound the retries when the broker does not
    acknowledge; each retry re-sends the same event ids, so it cannot double count.
    """

    def __init__(
        self,
        partner_id: str,
        source_system: str,
        settings: Settings | None = None,
        registry: SchemaSource | None = None,
        *,
        attempts: int = 5,
        backoff_ms: int = 200,
    ) -> None:
        self.settings = settings or load_settings()
        self.place_key: PlaceKey = load_place_key(self.settings)
        self.partner_id = partner_id
        self.source_system = source_system
        self.topics = Topics(self.settings.topic_prefix)
        secret = self.place_key.secret
        # The token for (scheme, value). A bulk load sends many events for each person, so
        # each identifier's token is kept (normalisation and HMAC, about 6 µs an
        # identifier), only in this process's memory, which holds the drafts' identifiers
        # anyway; a refused identifier is not kept.
        self.token_of = lru_cache(maxsize=TOKENS_KEPT)(
            lambda scheme, value: token(scheme, value, secret)
        )
        self._serde = Serde(registry or LocalSchemas())
        self.delivery = Delivery(self.settings, attempts=attempts, backoff_ms=backoff_ms)

    def tokens(self, identifiers: Mapping[str, str]) -> list[str]:
        """The pseudonymous tokens for a partner's raw identifiers, in a stable order."""
        tokens: set[str] = set()
        for scheme, value in identifiers.items():
            pointer = f"/identifiers/{scheme}" if scheme in SCHEMES else "/identifiers"
            try:
                tokens.add(self.token_of(scheme, value))
            except IdentifierError as exc:
                message = str(exc).removeprefix(f"{scheme}: ")
                raise EventRejected([(pointer, message)]) from None
        return sorted(tokens)

    def to_event(self, draft: EventDraft) -> PartnerEvent:
        """The wire event for ``draft``: identifiers tokenised, ids and times filled in."""
        if draft.basis is None:
            raise NoConsentReference()
        _refuse_identifier_as_reference(draft)
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

    def to_link(self, draft: LinkDraft) -> IdentityLink:
        """The wire identity link for ``draft``, both identifiers tokenised."""
        try:
            return IdentityLink(
                link_id=draft.link_id,
                partner_id=self.partner_id,
                tokens=[self.token_of(scheme, value) for scheme, value in draft.identifiers],
                method=draft.method,
                status=LinkStatus.RETRACTED if draft.retracted else LinkStatus.ASSERTED,
                recorded_at=utc_now(),
                basis=draft.basis,
            )
        except ValidationError as exc:
            raise EventRejected(validation_errors(exc)) from None

    def publish_link(self, draft: LinkDraft) -> Receipt:
        """Assert (or retract) that two identifiers are one person; returns once acknowledged.

        Links go to this partner's own topic, ``partner.<id>.links``."""
        link = self.to_link(draft)
        topic = self.topics.partner_links(self.partner_id)
        return self.deliver([self._frame(topic, link.link_id, link)])[0]

    def prepare(self, draft: EventDraft) -> Outgoing:
        """Validate, pseudonymise and encode one draft (``EventRejected`` if it is wrong)."""
        event = self.to_event(draft)
        return frame_event(self._serde, self.topics, event, self.settings.max_event_bytes)

    def deliver(self, prepared: Sequence[Outgoing]) -> list[Receipt]:
        """Send prepared events; one receipt each, in order, once every one is acknowledged.

        ``UnknownPartner`` if a topic does not exist (nothing is sent)."""
        try:
            return self.delivery.deliver(prepared)
        except MissingTopic as exc:
            raise UnknownPartner(self.partner_id, exc.topic) from None

    def publish(self, draft: EventDraft) -> Receipt:
        """Publish one event and wait for the broker's acknowledgement."""
        return self.publish_many([draft])[0]

    def publish_many(self, drafts: Iterable[EventDraft]) -> list[Receipt]:
        """Publish events as one batch: all are checked first, so a bad one sends nothing."""
        return self.deliver([self.prepare(draft) for draft in drafts])

    def publish_consent(self, draft: ConsentDraft) -> Receipt:
        """Publish one consent record (keyed by consent id) and wait for the acknowledgement."""
        return self.publish_consents([draft])[0]

    def publish_consents(self, drafts: Iterable[ConsentDraft]) -> list[Receipt]:
        """Publish consent records as one batch; returns after every one is acknowledged."""
        topic = self.topics.consent
        items = [self._frame(topic, r.consent_id, r) for r in map(self.to_consent, drafts)]
        return self.deliver(items)

    def _frame(self, topic: str, key: str, model: AvroModel) -> Outgoing:
        return Outgoing(topic, key.encode(), self._serde.encode(model, f"{topic}-value"), key)

    def close(self) -> None:
        """Flush and close the producer."""
        self.delivery.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _refuse_identifier_as_reference(draft: EventDraft) -> None:
    """``source_ref`` travels in clear: it may not repeat one of the draft's identifiers
    (a council reference sent as both would undo its token)."""
    ref = _SEPARATORS.sub("", draft.source_ref).upper()
    if any(_SEPARATORS.sub("", value).upper() == ref for value in draft.identifiers.values()):
        raise EventRejected([("/source_ref", _REF_REPEATS_IDENTIFIER)])


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
