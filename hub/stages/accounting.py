"""Accounting: where every record that entered is now, so the books can be checked.

Each partner record has a *source* (topic:partition:offset) that travels with it through
quarantine, identity and the view. Its fate is read off the state that holds it: a view
entry (the first source of an event id is ``in_view``, later ones are ``duplicate``), a
held quarantine item, or a ``fates`` record: ``dropped`` from quarantine or a full view,
``erased`` or ``expired`` (past retention) from a view, each with an audit record;
``duplicate`` for another copy of a held event; ``dead_lettered`` by a later stage. Only
what the gate decides alone — ``received`` and ``dead_lettered`` — is counted as a flow,
in a ledger whose entries carry the offsets they counted (as ranges, ``hub.stages.offsets``),
so a record read again after a crash is not counted twice.

Because fates are read from state, a crash and replay cannot double count: the same
source lands in the same place. ``in_flight`` is whatever is not (yet) anywhere; once the
hub is idle it is zero, and ``received = in_view + duplicate + held_in_quarantine +
dead_lettered + dropped + erased + expired``, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from hub import batch
from hub.stages import offsets
from hub.stages.effects import Effects, Record
from hub.topics import Topics

__all__ = [
    "FLOWS",
    "Fates",
    "Ledger",
    "already_counted",
    "count",
    "count_settled",
    "fate_value",
    "ledger_key",
    "local_books",
    "partner_status",
]

FLOWS = ("received", "dead_lettered")

Ledger = dict[str, Any]  # {"done": [[first, last], ...], "partners": {partner: {flow: n}}}


def ledger_key(topic: str, partition: int) -> str:
    return f"{topic}|{partition}"


def _done(entry: Ledger | None) -> offsets.Ranges:
    if entry is None:
        return []
    if "done" in entry:
        return list(entry["done"])
    return [[-1, entry["offset"]]]  # an entry written before ranges: all up to its offset


def already_counted(entry: Ledger | None, offset: int) -> bool:
    """True if the record at ``offset`` was counted before (read again after a restart)."""
    return offsets.done(_done(entry), offset)


def count(entry: Ledger | None, offset: int, partner: str, flows: Iterable[str]) -> Ledger:
    """A new ledger entry with ``flows`` of ``partner`` incremented and ``offset`` counted."""
    partners = {p: dict(c) for p, c in (entry or {}).get("partners", {}).items()}
    counts = partners.setdefault(partner, {})
    for flow in flows:
        assert flow in FLOWS, flow
        counts[flow] = counts.get(flow, 0) + 1
    return {"done": offsets.with_done(_done(entry), [offset]), "partners": partners}


BOOKS = (*FLOWS, "in_view", "duplicate", "held_in_quarantine", "dropped", "erased", "expired")
FATES = ("dead_lettered", "duplicate", "dropped", "erased", "expired")


def fate_value(fate: str, partner: str, topic: str, partition: int) -> dict[str, Any]:
    """A ``fates`` table value: ``topic``/``partition`` say which worker's share it is in
    (the partition of the stage input that decided it, or the one it is co-partitioned with).
    """
    assert fate in FATES, fate
    return {"fate": fate, "partner": partner, "topic": topic, "partition": partition}


def local_books(
    ledger: Iterable[Ledger],
    views: Iterable[Mapping[str, Any]],
    held: Iterable[list[Mapping[str, Any]]],
    fates: Iterable[Mapping[str, str]],
    known_fates: Mapping[str, Any],
) -> dict[str, dict[str, int]]:
    """Every partner's books over the state given (one worker's share), in one pass.

    ``known_fates`` (source → fate) keeps a record that already has a fate from also
    being counted where it was, in the moment between the two writes.
    """
    books: dict[str, dict[str, int]] = {}

    def of(partner: str) -> dict[str, int]:
        return books.setdefault(partner, dict.fromkeys(BOOKS, 0))

    for entry in ledger:
        for partner, flows in entry.get("partners", {}).items():
            for flow, n in flows.items():
                of(partner)[flow] += n
    for view in views:
        for item in view.get("entries", []):
            live = [s for s in item["sources"] if s not in known_fates]
            share = of(item["partner_id"])
            share["in_view"] += 1 if live else 0
            share["duplicate"] += max(0, len(live) - 1)
    for items in held:
        for item in items:
            if item["source"] not in known_fates:
                of(item["partner_id"])["held_in_quarantine"] += 1
    for fate in fates:
        of(fate["partner"])[fate["fate"]] += 1
    return books


def partner_status(books: Iterable[Mapping[str, int]]) -> dict[str, int | bool]:
    """One partner's books: every worker's share added up, and what is not placed yet."""
    totals = dict.fromkeys(BOOKS, 0)
    for share in books:
        for name in BOOKS:
            totals[name] += share[name]
    placed = sum(totals[k] for k in totals if k != "received")
    return {
        **totals,
        "dropped_with_audit": totals["dropped"] + totals["erased"] + totals["expired"],
        "in_flight": totals["received"] - placed,
        # Every record that entered is in exactly one place (in_flight is zero at rest).
        "balanced": placed == totals["received"],
    }


def count_settled(effects: Effects, partner: str, fate: str, n: int = 1) -> None:
    """The metric increment for ``n`` records of ``partner`` reaching ``fate``."""
    effects.count("placehub_records_settled", partner, fate, n=n)


class Fates:
    """Where a stage records the fates it decides: the ``fates`` table (the books) and a
    ``placehub_records_settled`` metric increment (so ``/metrics`` needs no scan)."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects, topics: Topics) -> None:
        self.table, self.effects, self.topics = table, effects, topics

    def partner_of(self, source: str) -> str | None:
        """The partner whose topic ``source`` (topic:partition:offset) was read from."""
        return self.topics.partner_of(source.split(":", 1)[0]) if source else None

    def settle(self, source: str, fate: str, partner: str, topic: str, partition: int) -> None:
        """Give ``source`` its ``fate``; ``topic``/``partition`` say whose share it is."""
        self.table[source] = fate_value(fate, partner, topic, partition)
        self.count(partner, fate)

    def count(self, partner: str, fate: str, n: int = 1) -> None:
        """Count ``n`` records of ``partner`` that reached ``fate`` (a state, not a row)."""
        count_settled(self.effects, partner, fate, n)

    def refuse_item(
        self,
        record: Record,
        item: batch.Item,
        stage: str,
        reason: str,
        now: datetime,
        share: tuple[str, int],
    ) -> None:
        """A batch item a stage cannot take: to the DLQ, and its partner's books say so."""
        self.effects.dead_letter(replace(record, value=item.raw), stage, reason, now)
        self.settle_source(item.source, "dead_lettered", share)

    def settle_source(self, source: str, fate: str, share: tuple[str, int]) -> None:
        """``settle``, with the partner read from ``source``'s topic (nothing to settle if
        it is not a partner's record)."""
        partner = self.partner_of(source)
        if partner is not None:
            self.settle(source, fate, partner, *share)
