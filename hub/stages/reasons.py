"""Reason codes: the bounded labels the metrics give the stages' reasons.

A stage's reason for holding or dead-lettering a record is the hub's own words with ids in
them (``consent c-17 does not cover partner city-police``): right for a dead letter, wrong
for a metric label, where every distinct id would be a new series. So the metrics count
by a code read off the reason's wording (never a value in it), from a fixed list; wording
this module does not know is ``other``. The unit tests build each reason with the function
that writes it, so changed wording fails them rather than turning into ``other``.

Two lists: ``BASIS_RESULTS``, what the gate's lawful-basis check found for an event it
could read (``live``, or why it was held in quarantine), by basis kind; and
``DEAD_LETTER_REASONS``, why any stage sent a record to ``hub.dlq``.
"""

from __future__ import annotations

import re

from hub.models import BasisKind, PartnerEvent

__all__ = [
    "BASIS_RESULTS",
    "DEAD_LETTER_REASONS",
    "LIVE",
    "OTHER",
    "PERSON_LEVEL_RESULTS",
    "basis_check",
    "basis_result",
    "dead_letter_reason",
]

LIVE = "live"
OTHER = "other"

_CONSENT = (
    ("unknown", r"consent .* is not known to the hub"),
    ("withdrawn", r"consent .* has been withdrawn$"),
    ("not_live", r"consent .* is \w+ or expired$"),
    ("purpose", r"consent .* does not cover purpose "),
    ("partner", r"consent .* does not cover partner "),
    ("different_person", r"consent .* is about a different person$"),
    ("identifier_not_given", r"consent .*: subject\.tokens holds an identifier"),
)
_AGREEMENT = (
    ("unknown", r"data-sharing agreement .* is not in this deployment$"),
    ("not_in_force", r"agreement .* is not in force on "),
    ("partner", r"agreement .* does not include partner "),
    ("purpose", r"agreement .* does not cover purpose "),
    ("event_type", r"agreement .* does not cover event type "),
)
_BASIS = {"consent": _CONSENT, "agreement": _AGREEMENT}

# What the gate's check can find, by basis kind (``live``: admitted at once).
BASIS_RESULTS: dict[str, tuple[str, ...]] = {
    kind: (LIVE, *(code for code, _ in rules), OTHER) for kind, rules in _BASIS.items()
}
# Results that follow one person's consent (withdrawn, lapsed, or not given for this
# partner or purpose): the metrics round their counts, as they do erasures.
PERSON_LEVEL_RESULTS = ("withdrawn", "not_live", "purpose", "partner")

_DEAD_LETTER = (
    ("schema_unknown", r"SchemaNotFound: "),
    ("undecodable", r"DecodeError: "),
    ("invalid_event", r"EventRejected: "),
    ("wrong_partner", r"(event|link) says partner .* but arrived on the topic of "),
    ("stage_error", r"\S+ could not process the record: "),
    ("unknown_operation", r".* has no operation "),
    ("person_too_large", r"identity of person .* would take \d+ bytes"),
    ("quarantine_full", r"quarantine for basis .* is full "),
    ("consent_misplaced", r"consent record is on partition "),
    ("consent_owned", r"consent_id: belongs to the partner that first published it"),
    ("consent_reused", r"consent_id: a withdrawn consent cannot be given again"),
    ("link_basis", r"basis: an asserted link needs a lawful basis"),
    ("link_basis", r"consent .*: neither of the link's tokens"),
    ("invalid", r"[A-Z]\w*: "),  # another input error of the decoder, by its class
)
# Why a stage dead-lettered a record. A link whose lawful basis does not cover it is
# ``link_basis`` whatever the check said: links are the only records the DLQ gets for that.
DEAD_LETTER_REASONS = (*dict.fromkeys(code for code, _ in _DEAD_LETTER), OTHER)


def _first(rules: tuple[tuple[str, str], ...], reason: str) -> str | None:
    return next((code for code, pattern in rules if re.match(pattern, reason)), None)


def basis_result(kind: str, reason: str) -> str:
    """The code of a lawful-basis ``reason`` under a basis of ``kind`` (``live`` if none)."""
    if not reason:
        return LIVE
    return _first(_BASIS[kind], reason) or OTHER


def basis_check(event: PartnerEvent, reason: str) -> tuple[str, str]:
    """(basis kind, result) of the gate's check of ``event``, which found ``reason``."""
    kind = "consent" if event.basis.kind is BasisKind.CONSENT else "agreement"
    return kind, basis_result(kind, reason)


def dead_letter_reason(reason: str) -> str:
    """The code of a dead letter's ``reason``."""
    if _first(tuple(r for kind in _BASIS.values() for r in kind), reason):
        return "link_basis"  # only links reach the DLQ for their lawful basis
    return _first(_DEAD_LETTER, reason) or OTHER
