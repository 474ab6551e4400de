"""The person-centred view: what the hub may show of one person, folded from their events.

A view is a set of timeline entries (one per event id, codes only). Everything else a
caller sees (partners involved, last contact, needs by domain) is derived from the
entries when the view is read. That keeps folding, merging, splitting and erasing simple
set operations whose result does not depend on arrival order, so a replay or a restart
after a crash ends in exactly the same view. Beside the views the stage keeps the index
of partners' record refs that a lookup by ``source_ref`` reads (``hub.stages.refs``).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, Field

from hub import batch
from hub.batch import Op
from hub.models import PartnerEvent, ReferralEvent
from hub.stages.accounting import Fates
from hub.stages.context import Context
from hub.stages.effects import (
    Effects,
    Output,
    Record,
    Refused,
    State,
    audit_record,
    run_each,
)
from hub.stages.hops import by_person, each_item, framed_in
from hub.stages.identity import strength
from hub.stages.refs import reindex

__all__ = [
    "MAX_ENTRIES",
    "MAX_SOURCES",
    "VIEW_MAX_BYTES",
    "PersonView",
    "TimelineEntry",
    "ViewStage",
    "absorb",
    "due_sweeps",
    "entry_for",
    "erase_basis",
    "expires_at",
    "fold",
    "overflow",
    "prune",
    "split",
]

PLAN_OPENED, PLAN_CLOSED = "social_care.plan_opened", "social_care.plan_closed"

# Hard bounds per person, so one very active person cannot grow a table row past what a
# Kafka record holds (1 MiB); retention normally prunes long before this. Entries over
# them go oldest first, as ``dropped`` with an audit record.
MAX_ENTRIES = 1000
VIEW_MAX_BYTES = 640 * 1024
# Partner records kept on one entry: further copies of an event get their ``duplicate``
# fate in the fates table instead, so re-sending cannot grow an entry without bound.
MAX_SOURCES = 20
# The id of one write of a view (``ReadBack``): not part of the view.
WRITTEN_AS = "written_as"
# An entry is under ~2.7 KB as JSON (16 tokens, 20 sources, short codes), so this many
# always fit VIEW_MAX_BYTES and the bytes need not be measured.
_ALWAYS_FITS = 200


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
    # A referral's receiving partner (an organisation code): the patterns' flows read it.
    to_partner: str | None = None


# What a timeline carries of an entry: everything but the tokens and the partner records.
_IN_TIMELINES = tuple(
    name for name in TimelineEntry.model_fields if name not in ("tokens", "sources")
)


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
        to_partner=event.payload.to_partner if isinstance(event.payload, ReferralEvent) else None,
    )


def lead_partners(entries: Iterable[TimelineEntry]) -> list[str]:
    """The partners holding an open plan for the person (their latest plan event, in time
    order, opened one): where the lead practitioner sits."""
    plans: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.occurred_at):
        if entry.event_type in (PLAN_OPENED, PLAN_CLOSED):
            plans[entry.partner_id] = entry.event_type
    return sorted(partner for partner, latest in plans.items() if latest == PLAN_OPENED)


def timelines(
    ctx: Context,
    views: Iterable[tuple[str, list[dict[str, Any]]]],
    arrived: Mapping[str, set[tuple[str, str]]] | None = None,
) -> list[Output]:
    """The view's word to the patterns and alerts stages: each changed person's timeline
    (codes, dates, partners, bases, source refs; no tokens); to the patterns unless the
    place turned them off, to the alerts only when the place has alert rules. ``views``
    gives each changed person's entries as the views table holds them (empty: gone)."""
    if not ctx.patterns and not len(ctx.rules):
        return []  # no stage to tell: no timeline is serialised
    arrived = arrived or {}
    items = [
        batch.Item(Op.TIMELINE, person_id, raw=_timeline_bytes(entries, arrived.get(person_id)))
        for person_id, entries in views
    ]
    outputs = by_person(ctx, ctx.internal.patterns, items) if ctx.patterns else []
    if len(ctx.rules):
        outputs += by_person(ctx, ctx.internal.alerts, items)
    return outputs


def _timeline_bytes(entries: list[dict[str, Any]], arrived: set[tuple[str, str]] | None) -> bytes:
    """The entries as JSON, without their tokens and sources; those that arrived in this
    batch (folded from a partner, not moved by a merge or split) say so (``arrived``: the
    patterns count them late if their window has closed). Taken from the views table's
    dump, so a view is dumped once a batch."""
    shown = []
    for fields in entries:
        entry = {name: fields[name] for name in _IN_TIMELINES}
        if arrived and (fields["partner_id"], fields["event_id"]) in arrived:
            entry["arrived"] = True
        shown.append(entry)
    return orjson.dumps(shown)


def _identity(entry: TimelineEntry) -> tuple[str, str]:
    """What makes two entries one event: event ids are unique per partner only, so one
    partner cannot pre-empt another's event by sending its id first."""
    return entry.partner_id, entry.event_id


def _canonical(person_id: str, entries: Iterable[TimelineEntry]) -> PersonView:
    unique: dict[tuple[str, str], TimelineEntry] = {}
    for entry in entries:
        identity = _identity(entry)
        known = unique.get(identity)
        if known is not None:
            sources = sorted(set(known.sources) | set(entry.sources))
            entry = known.model_copy(update={"sources": sources})
        unique[identity] = entry
    ordered = sorted(unique.values(), key=lambda e: (e.occurred_at, e.partner_id, e.event_id))
    return PersonView(person_id=person_id, entries=ordered)


def fold(
    view: PersonView | None, person_id: str, entry: TimelineEntry
) -> tuple[PersonView | None, str]:
    """``view`` with ``entry`` added, and what that was: 'folded' (a new event),
    'duplicate' (a known event re-sent by its partner), 'redelivered' (the same record
    again, after a restart) or 'unrecorded' (a copy past ``MAX_SOURCES``, which the caller
    gives its fate); None for the view when it is unchanged."""
    key = _identity(entry)
    known = next((e for e in view.entries if _identity(e) == key), None) if view else None
    if known is None:
        return _canonical(person_id, [*(view.entries if view else []), entry]), "folded"
    if set(entry.sources) <= set(known.sources):
        return None, "redelivered"
    if len(known.sources) >= MAX_SOURCES:
        return None, "unrecorded"
    assert view is not None
    return _canonical(person_id, [*view.entries, entry]), "duplicate"


def absorb(view: PersonView | None, person_id: str, entries: Iterable[TimelineEntry]) -> PersonView:
    """``view`` with another view's entries merged in (a merge of two people)."""
    return _canonical(person_id, [*(view.entries if view else []), *entries])


def split(view: PersonView, parts: dict[str, list[str]]) -> dict[str, list[TimelineEntry]]:
    """The entries of ``view`` shared out to the people it split into, by their tokens: an
    entry carrying tokens of two of them goes with its strongest (as identity places it)."""
    owner = {token: person for person, tokens in parts.items() for token in tokens}
    shares: dict[str, list[TimelineEntry]] = {person: [] for person in parts}
    for entry in view.entries:
        ranked = sorted(entry.tokens, key=strength)
        person = next((owner[t] for t in ranked if t in owner), None)
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
) -> tuple[PersonView | None, list[TimelineEntry]]:
    """``view`` without entries older than their basis's retention (None if nothing is
    left), and the entries that went."""
    limits = _limits(view, retention)
    kept = [entry for entry in view.entries if now - entry.occurred_at <= limits[entry.basis]]
    if len(kept) == len(view.entries):
        return view, []
    removed = [entry for entry in view.entries if entry not in kept]
    return (_canonical(view.person_id, kept) if kept else None), removed


def overflow(
    view: PersonView, max_entries: int = MAX_ENTRIES, max_bytes: int = VIEW_MAX_BYTES
) -> tuple[PersonView, list[TimelineEntry]]:
    """``view`` cut to fit the bounds, and the entries that did not fit.

    Entries go from the partner holding the most, oldest first: one partner sending many
    (or future-dated) events can only push out its own entries, never another's.
    """
    entries = view.entries
    if len(entries) <= min(_ALWAYS_FITS, max_entries):
        return view, []
    sizes = {id(e): len(e.model_dump_json()) + 1 for e in entries}
    size = sum(sizes.values())
    if len(entries) <= max_entries and size <= max_bytes:
        return view, []
    by_partner: dict[str, list[TimelineEntry]] = {}
    for entry in entries:  # oldest first within each partner
        by_partner.setdefault(entry.partner_id, []).append(entry)
    removed: set[int] = set()
    count = len(entries)
    while count > max_entries or size > max_bytes:
        largest = max(by_partner.values(), key=len)
        entry = largest.pop(0)
        removed.add(id(entry))
        count, size = count - 1, size - sizes[id(entry)]
    kept = [e for e in entries if id(e) not in removed]
    return PersonView(person_id=view.person_id, entries=kept), [
        e for e in entries if id(e) in removed
    ]


def expires_at(view: PersonView, retention: Callable[[str], timedelta]) -> datetime | None:
    """When the view's first entry passes its retention (the sweep's due time)."""
    limits = _limits(view, retention)
    return min((e.occurred_at + limits[e.basis] for e in view.entries), default=None)


def _limits(view: PersonView, retention: Callable[[str], timedelta]) -> dict[str, timedelta]:
    """Each basis in ``view`` with its retention: a view has a few bases and many entries."""
    return {basis: retention(basis) for basis in {e.basis for e in view.entries}}


class ViewStage:
    """Folds events into person views; applies merges, splits, erasures and expiry."""

    name = "view"
    tables: tuple[str, ...] = ("views", "view-refs", "fates", "consents")  # consents: read only
    # The refs index lands with the views it indexes (hub.stages.refs).
    writes: tuple[tuple[str, ...], ...] = (("fates",), ("views", "view-refs"))

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.read_back = ReadBack()

    def framed(self, records: Sequence[Record]) -> Iterator[bytes | None]:
        """The framed events and links inside ``records`` (the runtime loads their schemas)."""
        return framed_in(records, self.ctx.internal.view)

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply one batch of view work and transfers; every change settles retention."""
        effects = Effects()
        views = _Views(state["views"], self.read_back)
        state.extras.append(views)
        work = _Work(self, views, state["fates"], state["consents"], effects, now)
        moved: set[tuple[str, str]] = set()  # entries a transfer brought: no new arrivals

        def one(record: Record) -> None:
            if record.topic != self.ctx.internal.view:  # a transfer: entries moving in
                person_id = (record.key or b"").decode()
                moving = orjson.loads(record.value or b"")
                entries = [TimelineEntry.model_validate(e) for e in moving]
                moved.update(_identity(e) for e in entries)
                work.settle(person_id, absorb(views.get(person_id), person_id, entries))
                return
            each_item(
                self.name,
                record,
                state,
                effects,
                work.item,
                lambda item, reason: work.refused(record, item, reason),
            )

        run_each(self.name, records, state, effects, now, one)
        views.write(state, self.ctx.partitions, self.ctx.retention)
        arrived = views.arrived(moved) if self.ctx.patterns else None  # only they read it
        effects.outputs += timelines(self.ctx, views.dumped.items(), arrived)
        return effects


class ReadBack:
    """The views this stage last wrote, with their models: one read back unchanged is not
    validated again (about 13 µs an entry, profiled; a person's view is read by every batch that
    touches them). Each value written carries a random ``written_as`` id; a stored value
    without the kept one (another worker's, a batch that was not delivered, a restart) is
    validated as ever. Comparing whole values instead cost a third of the validation
    saved. Bounded: ``size`` people."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.kept: OrderedDict[str, tuple[str, PersonView]] = OrderedDict()

    def view(self, person_id: str, stored: Mapping[str, Any]) -> PersonView:
        """``stored`` (a person's table value) as a model."""
        kept = self.kept.get(person_id)
        if kept is not None and stored.get(WRITTEN_AS) == kept[0]:
            self.kept.move_to_end(person_id)
            return kept[1]
        return PersonView.model_validate(stored)

    def keep(self, person_id: str, view: PersonView) -> str:
        """Remember ``view`` as written for ``person_id``; returns the id to write with it."""
        self.kept.pop(person_id, None)
        written_as = secrets.token_hex(8)
        self.kept[person_id] = (written_as, view)
        if len(self.kept) > self.size:
            self.kept.popitem(last=False)
        return written_as

    def forget(self, person_id: str) -> None:
        """The person's view went: nothing of theirs is kept."""
        self.kept.pop(person_id, None)


class _Views:
    """The views a batch touches, as models: read once, written back once (undoable)."""

    def __init__(self, stored: MutableMapping[Any, Any], read_back: ReadBack) -> None:
        self.stored = stored
        self.read_back = read_back
        self.models: dict[str, PersonView | None] = {}
        self.stored_models: dict[str, PersonView | None] = {}  # as read, for the refs index
        self.changed: list[tuple[str, PersonView | None, bool]] = []  # undo log
        self.dumped: dict[str, list[dict[str, Any]]] = {}  # entries as written, by person

    def get(self, person_id: str) -> PersonView | None:
        if person_id not in self.models:
            stored = self.stored.get(person_id.encode())
            self.models[person_id] = self.read_back.view(person_id, stored) if stored else None
            self.stored_models[person_id] = self.models[person_id]
        return self.models[person_id]

    def put(self, person_id: str, view: PersonView | None) -> None:
        self.changed.append((person_id, self.get(person_id), True))
        self.models[person_id] = view

    def savepoint(self) -> int:
        return len(self.changed)

    def rollback(self, mark: int) -> None:
        while len(self.changed) > mark:
            person_id, before, _ = self.changed.pop()
            self.models[person_id] = before

    def arrived(self, moved: set[tuple[str, str]]) -> dict[str, set[tuple[str, str]]]:
        """Per person the batch changed, the events new to their view that no transfer
        brought: those a partner's record added."""
        found: dict[str, set[tuple[str, str]]] = {}
        for person_id, view in self.touched():
            before = self.stored_models.get(person_id)
            known = {_identity(e) for e in before.entries} if before else set()
            now = {_identity(e) for e in view.entries} if view else set()
            found[person_id] = now - known - moved
        return found

    def touched(self) -> list[tuple[str, PersonView | None]]:
        """Each person the batch changed, with their view now (None: gone)."""
        return [(p, self.models[p]) for p in dict.fromkeys(p for p, _, _ in self.changed)]

    def write(self, state: State, partitions: int, retention: Callable[[str], timedelta]) -> None:
        """Write each changed view to its table, and its refs to the index, on its person's
        partition."""
        for person_id in dict.fromkeys(person for person, _, _ in self.changed):
            view, key = self.models[person_id], person_id.encode()
            partition = batch.partition_for(key, partitions)
            state.at(partition)
            reindex(state["view-refs"], partition, person_id, self.stored_models[person_id], view)
            if view is None:
                self.stored.pop(key, None)
                self.dumped[person_id] = []
                self.read_back.forget(person_id)
                continue
            due = expires_at(view, retention)
            dumped = view.model_dump(mode="json")
            self.dumped[person_id] = dumped["entries"]
            self.stored[key] = {
                **dumped,
                "partition": partition,
                "expires_at": due.isoformat() if due else None,
                WRITTEN_AS: self.read_back.keep(person_id, view),
            }


class _Work:
    """One view batch's rules, item by item."""

    def __init__(
        self,
        stage: ViewStage,
        views: _Views,
        fates: MutableMapping[str, Any],
        consents: Mapping[str, Any],
        effects: Effects,
        now: datetime,
    ) -> None:
        self.ctx, self.views, self.effects, self.now = stage.ctx, views, effects, now
        self.fates = Fates(fates, effects, stage.ctx.topics)
        self.consents = consents

    def item(self, item: batch.Item) -> None:
        person_id = item.key
        if item.op is Op.EVENT:
            event = self.ctx.serde.decode(item.raw, PartnerEvent)
            entry = entry_for(event, item.source)
            if self._withdrawn(entry.basis):  # lost its basis on the way: erased on arrival
                self._fate(person_id, entry.sources, "erased", entry.partner_id)
                self.effects.audits.append(audit_record("view.drop.withdrawn", person_id, self.now))
                return
            updated, what = fold(self.views.get(person_id), person_id, entry)
            if what == "unrecorded":
                self._fate(person_id, [item.source], "duplicate", entry.partner_id)
            elif what != "redelivered":
                self.fates.count(entry.partner_id, "in_view" if what == "folded" else "duplicate")
            if what == "folded":  # publish → view (hub.metrics: placehub_event_latency_seconds)
                waited = max(0.0, (self.now - event.recorded_at).total_seconds())
                self.effects.observe(
                    "placehub_event_latency_seconds", event.partner_id, value=waited
                )
            if updated is not None:
                self.settle(person_id, updated)
                self.effects.count("placehub_view_updates")
        elif item.op is Op.MERGE:
            view = self.views.get(person_id)
            self.views.put(person_id, None)
            if view is not None:
                self._transfer(item.into, view.entries)
        elif item.op is Op.SPLIT:
            self._split(person_id, item.parts)
        elif item.op is Op.ERASE:
            self._erase(person_id, item.basis)
        elif item.op is Op.SWEEP:
            view = self.views.get(person_id)
            if view is not None:
                self.settle(person_id, view)
        else:
            raise Refused(f"the view has no operation {item.op!r}")

    def _withdrawn(self, basis: str) -> bool:
        kind, _, basis_id = basis.partition(":")
        return kind == "consent" and bool((self.consents.get(basis_id) or {}).get("withdrawn"))

    def settle(self, person_id: str, view: PersonView | None) -> None:
        """Store ``view`` after retention and the size bounds: what they remove gets a fate."""
        if view is not None:
            view, expired = prune(view, self.now, self.ctx.retention)
            self._remove(person_id, expired, "expired", "view.expire")
        if view is not None:
            view, dropped = overflow(view)
            self._remove(person_id, dropped, "dropped", "view.drop.full")
        self.views.put(person_id, view)

    def _remove(self, person_id: str, entries: list[TimelineEntry], fate: str, action: str) -> None:
        if not entries:
            return
        for entry in entries:  # fates with the write: a crash in between loses nothing
            self._fate(person_id, entry.sources, fate, entry.partner_id)
        self.effects.audits.append(audit_record(action, person_id, self.now))

    def _fate(self, person_id: str, sources: list[str], fate: str, partner: str) -> None:
        share = (
            self.ctx.internal.view,
            batch.partition_for(person_id.encode(), self.ctx.partitions),
        )
        for source in sources:
            self.fates.settle(source, fate, partner, *share)

    def _transfer(self, into: str, entries: list[TimelineEntry]) -> None:
        key = into.encode()
        payload = orjson.dumps([e.model_dump(mode="json") for e in entries])
        partition = batch.partition_for(key, self.ctx.partitions)
        self.effects.outputs.append(Output(self.ctx.internal.transfer, partition, key, payload))

    def _split(self, person_id: str, parts: dict[str, list[str]]) -> None:
        view = self.views.get(person_id)
        if view is None:
            return
        if person_id not in parts:
            self.views.put(person_id, None)
        for new_id, entries in split(view, parts).items():
            if new_id == person_id:
                self.views.put(person_id, PersonView(person_id=person_id, entries=entries))
            elif entries:
                self._transfer(new_id, entries)

    def _erase(self, person_id: str, basis: str) -> None:
        view = self.views.get(person_id)
        if view is None:
            return
        remaining, removed = erase_basis(view, basis)
        for entry in removed:
            self._fate(person_id, entry.sources, "erased", entry.partner_id)
        self.views.put(person_id, remaining)
        self.effects.audits.append(audit_record("person.erase", person_id, self.now))

    def refused(self, record: Record, item: batch.Item, reason: str) -> None:
        """An item the view cannot take: to the DLQ, and its partner's books say so."""
        share = (
            self.ctx.internal.view,
            batch.partition_for(item.key.encode(), self.ctx.partitions),
        )
        self.fates.refuse_item(record, item, "view", reason, self.now, share)


def due_sweeps(views: Mapping[bytes, Any], now: datetime) -> Iterator[str]:
    """The people whose views hold an entry past retention (their ``expires_at`` passed):
    the maintenance timer asks the view stage to sweep them, so expiry needs no new event."""
    for key, stored in views.items():
        due = stored.get("expires_at") if stored else None
        if due and datetime.fromisoformat(due) <= now:
            yield key.decode()
