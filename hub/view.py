"""The person-centred view: what the hub knows of one person, folded from their events.

Pure functions over plain data, so the fold is testable without Kafka and the Faust
table can store the view as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hub.models import PartnerEvent

__all__ = ["MAX_TIMELINE", "PartnerContact", "PersonView", "TimelineEntry", "fold", "minimise"]

# Bounded so one very active person cannot grow a table row without limit.
MAX_TIMELINE = 500


class TimelineEntry(BaseModel):
    """One event in a person's timeline: codes only."""

    event_id: str
    event_type: str
    partner_id: str
    occurred_at: datetime
    purpose: str


class PartnerContact(BaseModel):
    """One partner's involvement with the person."""

    last_contact: datetime
    source_refs: list[str] = Field(default_factory=list)


class PersonView(BaseModel):
    """The joined-up view of one person across partners."""

    person_id: str
    tokens: list[str] = Field(default_factory=list)
    partners: dict[str, PartnerContact] = Field(default_factory=dict)
    needs: dict[str, list[str]] = Field(default_factory=dict)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    area_code: str | None = None
    age_band: str | None = None
    event_count: int = 0

    def has_event(self, event_id: str) -> bool:
        """True if ``event_id`` is already folded in (replays must not double count)."""
        return any(entry.event_id == event_id for entry in self.timeline)


def fold(view: PersonView | None, person_id: str, event: PartnerEvent) -> PersonView | None:
    """``view`` with ``event`` added, or None when the event is already in it."""
    current = view or PersonView(person_id=person_id)
    if current.has_event(event.event_id):
        return None
    updated = current.model_copy(deep=True)
    updated.tokens = sorted(set(updated.tokens) | set(event.subject.tokens))
    contact = updated.partners.get(event.partner_id)
    if contact is None:
        contact = updated.partners[event.partner_id] = PartnerContact(
            last_contact=event.occurred_at
        )
    contact.last_contact = max(contact.last_contact, event.occurred_at)
    if event.source_ref not in contact.source_refs:
        contact.source_refs.append(event.source_ref)
    family, kind = event.event_type.split(".", 1)
    kinds = updated.needs.setdefault(family, [])
    if kind not in kinds:
        kinds.append(kind)
    updated.timeline.append(
        TimelineEntry(
            event_id=event.event_id,
            event_type=event.event_type,
            partner_id=event.partner_id,
            occurred_at=event.occurred_at,
            purpose=event.basis.purpose,
        )
    )
    updated.timeline.sort(key=lambda entry: entry.occurred_at)
    del updated.timeline[:-MAX_TIMELINE]
    updated.area_code = event.subject.area_code or updated.area_code
    if event.subject.age_band is not None:
        updated.age_band = event.subject.age_band.value
    updated.event_count += 1
    return updated


def minimise(view: PersonView, caller_partner: str | None) -> dict[str, Any]:
    """The view as a caller may see it: tokens dropped, ``source_ref``s only for their partner."""
    shown = view.model_dump(mode="json", exclude={"tokens"})
    for partner_id, contact in shown["partners"].items():
        if partner_id != caller_partner:
            contact.pop("source_refs")
    return shown
