"""Accounting: every record that enters is counted once, where its fate is decided.

Counts live in ledger entries keyed by (stage, topic, partition). Each entry also holds the
highest offset it has counted, written in the same table value as the counts, so after a
crash the records that are read again are recognised and not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["BUCKETS", "Ledger", "Tally", "already_counted", "count", "ledger_key", "partner_status"]

BUCKETS = (
    "received",  # gate: read from the partner's topic
    "admitted",  # gate: lawful and sent on to identity and the view
    "quarantined",  # gate: held for want of a lawful basis
    "dead_lettered",  # gate: undecodable or invalid, with its reason in hub.dlq
    "released",  # quarantine → view once the basis arrived
    "dropped",  # quarantine → gone, with an audit record (hold expired, consent withdrawn)
    "folded",  # view: a new entry in a person's view
    "duplicate",  # view: an event id already in the view (harmless re-send or replay)
    "erased",  # view: removed by withdrawal or expiry, with an audit record
)

Ledger = dict[str, Any]  # {"offset": int, "partners": {partner: {bucket: n}}}
Tally = dict[str, list[str]]  # what one record did: partner -> buckets to increment


def ledger_key(stage: str, topic: str, partition: int) -> str:
    return f"{stage}|{topic}|{partition}"


def already_counted(entry: Ledger | None, offset: int) -> bool:
    """True if the record at ``offset`` was counted before (read again after a restart)."""
    return entry is not None and offset <= entry["offset"]


def count(entry: Ledger | None, offset: int, tally: Tally) -> Ledger:
    """A new ledger entry with ``tally`` added, counted up to ``offset``."""
    partners = {p: dict(c) for p, c in (entry or {}).get("partners", {}).items()}
    for partner, buckets in tally.items():
        counts = partners.setdefault(partner, {})
        for bucket in buckets:
            assert bucket in BUCKETS, bucket
            counts[bucket] = counts.get(bucket, 0) + 1
    return {"offset": max(offset, (entry or {}).get("offset", -1)), "partners": partners}


def partner_status(entries: Iterable[Ledger], partner: str) -> dict[str, int | bool]:
    """One partner's totals, what is where now, and whether the books balance."""
    totals = dict.fromkeys(BUCKETS, 0)
    for entry in entries:
        for bucket, n in entry.get("partners", {}).get(partner, {}).items():
            totals[bucket] += n
    in_view = totals["folded"] - totals["erased"]
    held = totals["quarantined"] - totals["released"] - totals["dropped"]
    in_flight = totals["admitted"] + totals["released"] - totals["folded"] - totals["duplicate"]
    dropped_with_audit = totals["dropped"] + totals["erased"]
    accounted = in_view + held + totals["dead_lettered"] + dropped_with_audit
    return {
        **totals,
        "in_view": in_view,
        "held_in_quarantine": held,
        "dropped_with_audit": dropped_with_audit,
        "in_flight": in_flight,
        "balanced": totals["received"] == accounted + totals["duplicate"] + in_flight,
    }
