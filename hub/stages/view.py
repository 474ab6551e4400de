"""The person-centred view: what the hub may show of one person, folded from their events.

A view is a set of timeline entries (one per event id, codes only). Everything else a
caller sees (partners involved, last contact, needs by domain) is derived from the
entries when the view is read. That keeps folding, merging, splitting and erasing simple
set operations whose result does not depend on arrival order, so a replay or a restart
after a crash ends in exactly the same view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from hub.models import PartnerEvent

__all__ = [
    "MAX_ENTRIES",
    "PersonView",
    "TimelineEntry",
    "absorb",
    "entry_for",
    "erase_basis",
    "fold",
    "minimise",
    "prune",
    "split",
]

PLAN_OPENED, PLAN_CLOSED = "social_care.plan_opened", "social_care.plan_closed"

# A hard bound per person, so one very active person cannot grow a table row without
# limit; retention normally prunes long before this.
MAX_ENTRIES = 1000


class TimelineEntry(BaseModel):
    """One event in a person's timeline: codes and pseudonymous tokens only."""

    event_id: str
    event_type: str
    partner_id: str
    occurred_at: datetime
    purpose: str
    basis: str  # "consent:<id>" or "agreement:<id>"
    source_ref: str
    tokens: list[str]
    sources: list[str] = Field(default_factory=list)  # partner records that carried it
    area_code: str | None = None
    age_band: str | None = None


class PersonView(BaseModel):
    """The joined-up view of one person across partners."""

    person_id: str
    entries: list[TimelineEntry] = Field(default_factory=list)


def entry_for(event: PartnerEvent, source: str) -> TimelineEntry:
    """The timeline entry an event read from ``source`` contributes."""
    basis = event.basis
    kind, basis_id = (
        ("consent", basis.consent_id) if basis.consent_id else ("agreement", basis.agreement_id)
    )
    return TimelineEntry(
        event_id=event.event_id,
        event_type=event.event_type,
        partner_id=event.partner_id,
        occurred_at=event.occurred_at,
        purpose=basis.purpose,
        basis=f"{kind}:{basis_id}",
        source_ref=event.source_ref,
        tokens=event.subject.tokens,
        area_code=event.subject.area_code,
        age_band=event.subject.age_band.value if event.subject.age_band else None,
        sources=[source],
    )


def _canonical(person_id: str, entries: Iterable[TimelineEntry]) -> PersonView:
    unique: dict[str, TimelineEntry] = {}
    for entry in entries:
        known = unique.get(entry.event_id)
        if known is not None:
            sources = sorted(set(known.sources) | set(entry.sources))
            entry = known.model_copy(update={"sources": sources})
        unique[entry.event_id] = entry
    ordered = sorted(unique.values(), key=lambda e: (e.occurred_at, e.event_id))
    return PersonView(person_id=person_id, entries=ordered[-MAX_ENTRIES:])


def fold(
    view: PersonView | None, person_id: str, entry: TimelineEntry
) -> tuple[PersonView | None, str]:
    """``view`` with ``entry`` added, and what that was: 'folded' (a new event),
    'duplicate' (a known event re-sent by its partner) or 'redelivered' (the same record
    again, after a restart: the view is unchanged and None is returned)."""
    known = next((e for e in view.entries if e.event_id == entry.event_id), None) if view else None
    if known is None:
        return _canonical(person_id, [*(view.entries if view else []), entry]), "folded"
    if set(entry.sources) <= set(known.sources):
        return None, "redelivered"
    assert view is not None
    return _canonical(person_id, [*view.entries, entry]), "duplicate"


def absorb(view: PersonView | None, person_id: str, entries: Iterable[TimelineEntry]) -> PersonView:
    """``view`` with another view's entries merged in (a merge of two people)."""
    return _canonical(person_id, [*(view.entries if view else []), *entries])


def split(view: PersonView, parts: dict[str, list[str]]) -> dict[str, list[TimelineEntry]]:
    """The entries of ``view`` shared out to the people it split into, by their tokens."""
    owner = {token: person for person, tokens in parts.items() for token in tokens}
    shares: dict[str, list[TimelineEntry]] = {person: [] for person in parts}
    for entry in view.entries:
        person = next((owner[t] for t in entry.tokens if t in owner), None)
        if person is not None:
            shares[person].append(entry)
    return shares


def erase_basis(view: PersonView, basis: str) -> tuple[PersonView | None, list[TimelineEntry]]:
    """``view`` without the entries shared under ``basis`` (None if nothing is left)."""
    kept = [entry for entry in view.entries if entry.basis != basis]
    removed = [entry for entry in view.entries if entry.basis == basis]
    return (_canonical(view.person_id, kept) if kept else None), removed


def prune(
    view: PersonView, now: datetime, retention: Callable[[str], timedelta]
) -> PersonView | None:
    """``view`` without entries older than their basis's retention (None if nothing is left)."""
    kept = [entry for entry in view.entries if now - entry.occurred_at <= retention(entry.basis)]
    if len(kept) == len(view.entries):
        return view
    return _canonical(view.person_id, kept) if kept else None


def minimise(
    view: PersonView, caller_partner: str | None, visible: Callable[[str], bool] = lambda _: True
) -> dict[str, Any]:
    """The view as a caller may see it: entries whose basis they may see, no tokens,
    ``source_ref``s only for the caller's own partner."""
    entries = [entry for entry in view.entries if visible(entry.basis)]
    partners: dict[str, dict[str, Any]] = {}
    needs: dict[str, list[str]] = {}
    for entry in entries:
        contact = partners.setdefault(entry.partner_id, {"last_contact": entry.occurred_at})
        contact["last_contact"] = max(contact["last_contact"], entry.occurred_at)
        if entry.partner_id == caller_partner:
            refs = contact.setdefault("source_refs", [])
            if entry.source_ref not in refs:
                refs.append(entry.source_ref)
        family, kind = entry.event_type.split(".", 1)
        if kind not in needs.setdefault(family, []):
            needs[family].append(kind)
    latest = entries[-1] if entries else None
    plans: dict[str, str] = {}  # partner -> its latest plan event, in time order
    for entry in entries:
        if entry.event_type in (PLAN_OPENED, PLAN_CLOSED):
            plans[entry.partner_id] = entry.event_type
    return {
        "person_id": view.person_id,
        "event_count": len(entries),
        "partners": {
            p: {**c, "last_contact": c["last_contact"].isoformat().replace("+00:00", "Z")}
            for p, c in sorted(partners.items())
        },
        "needs": {family: sorted(kinds) for family, kinds in sorted(needs.items())},
        # The lead practitioner sits with the partner holding an open plan for the person.
        "lead_partners": sorted(p for p, last in plans.items() if last == PLAN_OPENED),
        "timeline": [
            {
                "event_id": e.event_id,
                "event_type": e.event_type,
                "partner_id": e.partner_id,
                "occurred_at": e.occurred_at.isoformat().replace("+00:00", "Z"),
                "purpose": e.purpose,
            }
            for e in entries
        ],
        "area_code": next((e.area_code for e in reversed(entries) if e.area_code), None),
        "age_band": next((e.age_band for e in reversed(entries) if e.age_band), None),
        "last_event_at": latest.occurred_at.isoformat().replace("+00:00", "Z") if latest else None,
    }
