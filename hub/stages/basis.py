"""The lawful-basis check the gate and the release stage share, over the consents table.

Consents are stored as JSON in a table; parsing one for every event cost more than the
check itself, so parsed consents are cached, and each use compares the stored value with
the one parsed (a changed or withdrawn consent is never read stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub.agreements import AgreementBook
from hub.models import BasisKind, ConsentRecord, IdentityLink, PartnerEvent
from hub.stages.linked import linked_to

__all__ = ["CONSENT_CACHE", "Consents", "lawful_basis_problem", "link_basis_problem"]

CONSENT_CACHE = 10_000  # parsed consents kept; bounds memory


def lawful_basis_problem(
    event: PartnerEvent,
    consent: ConsentRecord | None,
    agreements: AgreementBook,
    at: datetime,
    linked: Mapping[str, Any] | None = None,
) -> str | None:
    """None when ``event`` has a live lawful basis at ``at``; else why not.

    A consent covers its subject as a person: the identifiers it was given with, and those
    partners have linked to them (``linked``: token → the tokens its links join it to).
    The check is here, before identity, because admitting an event is what lets identity
    join its identifiers; links are the only evidence that is not itself an event.
    """
    basis = event.basis
    if basis.kind is BasisKind.AGREEMENT:
        assert basis.agreement_id is not None
        agreement = agreements.get(basis.agreement_id)
        if agreement is None:
            return f"data-sharing agreement {basis.agreement_id} is not in this deployment"
        return agreement.problem_with(event, at)
    if consent is None:
        return f"consent {basis.consent_id} is not known to the hub (yet)"
    problem = consent.shares(event.partner_id, event.basis.purpose, at)
    if problem is not None:
        return problem
    tokens, subject = set(event.subject.tokens), _subject(consent, linked)
    if not tokens & subject:
        return f"consent {consent.consent_id} is about a different person"
    if not tokens <= subject:
        # Any overlap is not enough: an event carrying another person's identifier would
        # be admitted under this consent and join the two people in identity.
        return (
            f"consent {consent.consent_id}: subject.tokens holds an identifier the consent's "
            "subject was not given with, nor linked to by a partner"
        )
    return None


def link_basis_problem(
    link: IdentityLink,
    consent: ConsentRecord | None,
    agreements: AgreementBook,
    at: datetime,
    linked: Mapping[str, Any] | None = None,
) -> str | None:
    """None when ``link`` may join its two identifiers at ``at``; else why not.

    Under an agreement, its partner signed it for the purpose and it is in force. Under a
    consent, the consent is live, shares with its partner for the purpose, and one of the
    two identifiers is its subject's (given with it, or linked to them before): a link
    attaches one more identifier to the person who consented, never two strangers.
    """
    basis = link.basis
    if basis is None:
        return "basis: an asserted link needs a lawful basis (consent or agreement)"
    if basis.kind is BasisKind.AGREEMENT:
        assert basis.agreement_id is not None
        agreement = agreements.get(basis.agreement_id)
        if agreement is None:
            return f"data-sharing agreement {basis.agreement_id} is not in this deployment"
        return agreement.signed_for(link.partner_id, basis.purpose, at)
    if consent is None:
        return f"consent {basis.consent_id} is not known to the hub (yet)"
    problem = consent.shares(link.partner_id, basis.purpose, at)
    if problem is None and not set(link.tokens) & _subject(consent, linked):
        return (
            f"consent {consent.consent_id}: neither of the link's tokens is one the consent's "
            "subject was given with, or linked to by a partner"
        )
    return problem


def _subject(consent: ConsentRecord, linked: Mapping[str, Any] | None) -> set[str]:
    """The tokens a consent covers: its own and those partners' links join them to."""
    subject = set(consent.subject_tokens)
    for token in consent.subject_tokens:
        subject.update(linked_to(linked or {}, token))
    return subject


class Consents:
    """Parsed consents, by id, checked against the stored value on every use."""

    def __init__(self, limit: int = CONSENT_CACHE) -> None:
        self.limit = limit
        self._parsed: dict[str, tuple[dict[str, Any], ConsentRecord]] = {}

    def live(self, consent_id: str, table: Mapping[str, Any]) -> ConsentRecord | None:
        """The consent ``table`` holds for ``consent_id`` (None if unknown or withdrawn)."""
        stored = table.get(consent_id)
        if not stored or stored.get("withdrawn"):
            return None
        cached = self._parsed.get(consent_id)
        if cached is not None and cached[0] == stored:
            return cached[1]
        if len(self._parsed) >= self.limit:
            self._parsed.clear()
        consent = ConsentRecord.model_validate(stored)
        self._parsed[consent_id] = (stored, consent)
        return consent

    def problem(
        self,
        event: PartnerEvent,
        table: Mapping[str, Any],
        agreements: AgreementBook,
        at: datetime,
        linked: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Why ``event`` has no lawful basis at ``at`` given ``table``, or None."""
        withdrawn, consent = self._named(event.basis.consent_id, table)
        return withdrawn or lawful_basis_problem(event, consent, agreements, at, linked)

    def link_problem(
        self,
        link: IdentityLink,
        table: Mapping[str, Any],
        agreements: AgreementBook,
        at: datetime,
        linked: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Why ``link`` may not join its identifiers at ``at`` given ``table``, or None."""
        withdrawn, consent = self._named(link.basis.consent_id if link.basis else None, table)
        return withdrawn or link_basis_problem(link, consent, agreements, at, linked)

    def _named(
        self, consent_id: str | None, table: Mapping[str, Any]
    ) -> tuple[str | None, ConsentRecord | None]:
        """(why not, if the consent named was withdrawn; the live consent, if any)."""
        if not consent_id:
            return None, None
        stored = table.get(consent_id)
        if stored and stored.get("withdrawn"):
            return f"consent {consent_id} has been withdrawn", None
        return None, self.live(consent_id, table)
