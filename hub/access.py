"""Who may read which person-view entry, and which of its fields: the read policy.

Pure functions over a view, the reader and the lawful bases as they stand at the read, so
``hub.people_api`` stays a thin handler and every rule is unit-tested with plain models.

- **Readers.** Only practitioners read people, and only as members of a partner. Admins
  (a technical role), stewards (place-level patterns) and partner feeds read no person data.
- **Entries.** An entry is shown only if its basis shares it with the reader's organisation
  for a purpose the reader holds. Consent: the reader's partner is one of the consent's
  ``sharing_partners``, the entry's purpose is one of its ``purposes``, and it is live.
  Agreement: the reader's partner signed it (``partners``), it covers the entry's purpose
  and is in force, and it lists the reader's role; the role sees the fields the agreement
  grants it. Purposes come from the bases, not from the user: a practitioner holds a
  purpose through their organisation's place in a consent or a signature on an agreement.
- **Own records.** Entries the reader's own partner shared are shown in full, with their
  ``source_ref``: they are that organisation's own records.
- **Involvement.** A practitioner reads a person only if their organisation is involved
  with them (an entry of theirs in the view, or an alert about them); any other read is a
  break-glass read (``hub.break_glass``), which skips only this check.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.agreements import ENTRY_FIELDS, AgreementBook
from hub.models import ConsentRecord
from hub.stages.view import PersonView, TimelineEntry, lead_partners
from hub.users import Role, User

__all__ = [
    "CONSENT_FIELDS",
    "Bases",
    "ConsentLookup",
    "Reader",
    "Shown",
    "involved",
    "owners",
    "present",
    "refusal",
    "select",
]

# What a consent shares with a sharing partner's practitioner: the entry's codes (a consent
# grants no finer per-role fields; an agreement can).
CONSENT_FIELDS = ENTRY_FIELDS
_NONE: frozenset[str] = frozenset()
_TIMELINE_FIELDS = ("event_type", "partner_id", "occurred_at", "purpose")

ConsentLookup = Callable[[str], ConsentRecord | None]  # consent id → live record, or None
Shown = list[tuple[TimelineEntry, frozenset[str]]]  # entries shown, each with its fields


@dataclass(frozen=True)
class Reader:
    """A practitioner reading as a member of one partner."""

    user_id: str
    role: Role
    partner: str
    team: str | None = None  # the partner's team the reader is in (alerts for one team)

    @classmethod
    def of(cls, user: User) -> Reader:
        """The reader ``user`` is; only for a user ``refusal`` lets read."""
        assert refusal(user) is None and user.partner is not None, "a refused user"
        return cls(user.id, user.role, user.partner, user.team)


def refusal(user: User) -> str | None:
    """Why ``user`` may not read person views at all, or None if they may."""
    if user.role is not Role.PRACTITIONER:
        return f"role {user.role.value} may not read person views"
    if user.partner is None:
        return "a practitioner must belong to a partner to read person views"
    return None


@dataclass(frozen=True)
class Bases:
    """The lawful bases as they stand at one read: which fields of an entry a reader sees."""

    agreements: AgreementBook
    consent_of: ConsentLookup
    at: datetime

    def fields(self, entry: TimelineEntry, reader: Reader) -> frozenset[str]:
        """The fields of ``entry`` ``reader`` may see; empty if the entry is not for them."""
        if entry.partner_id == reader.partner:
            return ENTRY_FIELDS  # their organisation's own record
        kind, _, basis_id = entry.basis.partition(":")
        if kind == "consent":
            return CONSENT_FIELDS if self._consent_shares(basis_id, entry, reader) else _NONE
        agreement = self.agreements.get(basis_id) if kind == "agreement" else None
        if agreement is None:
            return _NONE
        return agreement.grants(reader.partner, reader.role, entry.purpose, self.at.date())

    def _consent_shares(self, consent_id: str, entry: TimelineEntry, reader: Reader) -> bool:
        consent = self.consent_of(consent_id)
        return (
            consent is not None
            and consent.is_live(self.at)
            and reader.role is Role.PRACTITIONER
            and reader.partner in consent.sharing_partners
            and entry.purpose in consent.purposes
        )


def involved(view: PersonView, partner: str, alerted: Collection[str] = ()) -> bool:
    """Whether ``partner`` is involved with the person: it shared an entry in their view,
    or is among ``alerted``, the partners holding an alert about them (none until alerts
    exist: the people API passes the alert stage's answer here)."""
    return partner in alerted or any(entry.partner_id == partner for entry in view.entries)


def select(view: PersonView, fields_of: Callable[[TimelineEntry], frozenset[str]]) -> Shown:
    """The entries of ``view`` with any field to show, each with the fields it shows."""
    return [(entry, fields) for entry in view.entries if (fields := fields_of(entry))]


def owners(shown: Shown, reader: Reader) -> list[str]:
    """The partners whose entries ``shown`` holds, other than the reader's own."""
    return sorted({entry.partner_id for entry, _ in shown} - {reader.partner})


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _timeline_item(entry: TimelineEntry, fields: frozenset[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"event_id": entry.event_id}
    for name in _TIMELINE_FIELDS:
        if name in fields:
            value = getattr(entry, name)
            item[name] = _iso(value) if isinstance(value, datetime) else value
    return item


def _partners(shown: Shown, reader: Reader) -> dict[str, dict[str, Any]]:
    """Each partner shown with its last contact; ``source_refs`` only for the reader's own."""
    partners: dict[str, dict[str, Any]] = {}
    for entry, fields in shown:
        if "partner_id" not in fields:
            continue
        contact = partners.setdefault(entry.partner_id, {})
        if "occurred_at" in fields:
            contact["last_contact"] = max(
                contact.get("last_contact", entry.occurred_at), entry.occurred_at
            )
        if entry.partner_id == reader.partner:
            refs = contact.setdefault("source_refs", [])
            if entry.source_ref not in refs:
                refs.append(entry.source_ref)
    for contact in partners.values():
        if "last_contact" in contact:
            contact["last_contact"] = _iso(contact["last_contact"])
    return dict(sorted(partners.items()))


def _latest(shown: Shown, name: str) -> Any:
    """The newest non-empty value of ``name`` among entries that show it."""
    return next(
        (getattr(e, name) for e, f in reversed(shown) if name in f and getattr(e, name)), None
    )


def present(person_id: str, shown: Shown, reader: Reader) -> dict[str, Any]:
    """The view as ``reader`` may see it: only the entries and fields ``shown`` holds, no
    tokens, and ``source_ref``s only of the reader's own partner. Summaries (partners,
    needs, lead partners, last event) are built only from the fields each entry shows."""
    needs: dict[str, set[str]] = {}
    for entry, fields in shown:
        if "event_type" in fields:
            family, kind = entry.event_type.split(".", 1)
            needs.setdefault(family, set()).add(kind)
    planned = [e for e, fields in shown if {"event_type", "partner_id"} <= fields]
    last = max((e.occurred_at for e, f in shown if "occurred_at" in f), default=None)
    return {
        "person_id": person_id,
        "event_count": len(shown),
        "partners": _partners(shown, reader),
        "needs": {family: sorted(kinds) for family, kinds in sorted(needs.items())},
        # The lead practitioner sits with the partner holding an open plan for the person.
        "lead_partners": lead_partners(planned),
        "timeline": [_timeline_item(entry, fields) for entry, fields in shown],
        "area_code": _latest(shown, "area_code"),
        "age_band": _latest(shown, "age_band"),
        "last_event_at": _iso(last) if last else None,
    }
