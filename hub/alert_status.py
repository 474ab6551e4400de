"""Where an alert stands in each recipient organisation's inbox: open, acknowledged, closed.

A practitioner sets it for their organisation with ``POST /v1/alerts/{alert_id}/status``
(``{"status": "acknowledged"}``; ``open`` and ``closed`` too), for an alert their
organisation was told of. The status is an ``AlertStatus`` on ``hub.alert-status``
(compacted, keyed ``<alert_id>/<partner_id>``) written before the answer, and audited
(``alert.status``): Kafka holds it, not a worker. Feedback on an alert
(``hub.alert-feedback``) acknowledges an open alert too. Each raise of an alert (the first,
or an escalation with new facts) starts open: only what was set since counts
(``status_of``).

Every worker keeps a ``StatusBook`` (``hub.topic_book``): one reader of both topics from
their beginning. A read first lets it reach the ends the topics had (``current``), so an
answer reflects every status set before it was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from aiokafka import ConsumerRecord

from hub._admin import ensure_topic
from hub.app import Hub
from hub.models import AlertFeedback, AlertInboxStatus, AlertStatus
from hub.topic_book import CATCH_UP_S, TopicBook

__all__ = [
    "CATCH_UP_S",
    "DEFAULT_SHOWN",
    "BadStatus",
    "InboxStatus",
    "Marks",
    "StatusBook",
    "prepare_status_topic",
    "record_for",
    "status_book",
    "status_key",
    "status_of",
    "status_topic",
    "statuses_asked",
]


class InboxStatus(StrEnum):
    """An alert's status as the API spells it."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


@dataclass
class Marks:
    """What one organisation did about one alert: its latest status set, its latest
    feedback (either may be missing)."""

    set_at: datetime | None = None
    status: InboxStatus | None = None
    feedback_at: datetime | None = None


def status_of(marks: Marks | None, raised_at: datetime) -> InboxStatus:
    """The status of an alert last raised at ``raised_at``: the latest status set since
    then, else open; feedback since then acknowledges it if that leaves it open and the
    feedback came later (feedback does not reopen a closed alert)."""
    if marks is None:
        return InboxStatus.OPEN
    set_since = marks.status if marks.set_at is not None and marks.set_at >= raised_at else None
    fed_at = marks.feedback_at if marks.feedback_at and marks.feedback_at >= raised_at else None
    if set_since is None:
        return InboxStatus.OPEN if fed_at is None else InboxStatus.ACKNOWLEDGED
    assert marks.set_at is not None
    if set_since is InboxStatus.OPEN and fed_at is not None and fed_at >= marks.set_at:
        return InboxStatus.ACKNOWLEDGED
    return set_since


DEFAULT_SHOWN = frozenset({InboxStatus.OPEN, InboxStatus.ACKNOWLEDGED})


class BadStatus(ValueError):
    """Raised when a status asked for is not one; the message names the field and the rule."""


def statuses_asked(values: list[str]) -> frozenset[InboxStatus]:
    """The statuses an inbox query asks for (``status=open,closed`` or ``status`` given
    again); open and acknowledged when none is (``BadStatus`` naming the field)."""
    asked = [v.strip() for value in values for v in value.split(",")]
    if not asked:
        return DEFAULT_SHOWN
    try:
        return frozenset(InboxStatus(v) for v in asked)
    except ValueError:
        raise BadStatus("status: must be open, acknowledged or closed") from None


def status_topic(hub: Hub) -> str:
    """The deployment's ``hub.alert-status`` topic."""
    return f"{hub.settings.topic_prefix}hub.alert-status"


def status_key(alert_id: str, partner_id: str) -> bytes:
    """An organisation's status of an alert is keyed by both (compaction keeps each)."""
    return f"{alert_id}/{partner_id}".encode()


class StatusBook(TopicBook):
    """A worker's reading of every organisation's statuses and feedback (module docstring)."""

    name = "alert statuses"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub, (status_topic(hub), hub.topics.alert_feedback))
        self.marks: dict[tuple[str, str], Marks] = {}

    def status(self, alert_id: str, partner_id: str, raised_at: datetime) -> InboxStatus:
        """``partner_id``'s status of the alert as far as the book has read."""
        return status_of(self.marks.get((alert_id, partner_id)), raised_at)

    async def current(self) -> None:
        """Return once the book has read the topics to the ends they had at the call
        (``BrokerError`` if not within ``CATCH_UP_S``)."""
        await self.caught_up()

    async def note(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.topic == self.hub.topics.alert_feedback:
            feedback = await self.decoded(message, AlertFeedback)
            if feedback is not None:
                marks = self._marks(feedback.alert_id, feedback.partner_id)
                if marks.feedback_at is None or feedback.at > marks.feedback_at:
                    marks.feedback_at = feedback.at
            return
        record = await self.decoded(message, AlertStatus)
        if record is not None:
            marks = self._marks(record.alert_id, record.partner_id)
            if marks.set_at is None or record.at >= marks.set_at:
                marks.set_at, marks.status = record.at, InboxStatus(record.status.lower())

    def _marks(self, alert_id: str, partner_id: str) -> Marks:
        return self.marks.setdefault((alert_id, partner_id), Marks())


def status_book(hub: Hub) -> StatusBook:
    """The hub's ``StatusBook`` (made on first use; it reads once first asked to)."""
    return StatusBook.of(hub)


def record_for(alert_id: str, partner_id: str, status: InboxStatus, at: datetime) -> AlertStatus:
    """The ``AlertStatus`` that sets ``status``."""
    return AlertStatus(
        alert_id=alert_id,
        partner_id=partner_id,
        status=AlertInboxStatus(status.value.upper()),
        at=at,
    )


def prepare_status_topic(hub: Hub) -> None:
    """Create ``hub.alert-status`` (compacted) and register its schema, at start."""
    topic = status_topic(hub)
    ensure_topic(hub.settings, topic, partitions=hub.settings.partitions, compact=True)
    hub.serde.schema_for(AlertStatus.avro_schema, f"{topic}-value")
