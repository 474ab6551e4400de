"""Identity: which person a set of pseudonymous tokens belongs to.

A person is a connected component of tokens. Edges come from events that carry several
tokens (the partner holds them on one record: each is joined to the event's strongest)
and from ``IdentityLink`` assertions; each edge remembers its sources, by partner
(``record:<partner>``, ``link:<id>:<partner>:<method>``), so a partner's retraction of a
pair removes exactly its own evidence for it, records and that link, and splits the person
again if nothing else joins them. That is how a partner undoes what a wrong identifier on
its records joined.

A person's id is minted from the strongest token of its component (NHS number before UPN
before council reference before the name key), so the final ids depend only on the
tokens and links seen, never on the order they arrived in: replays and restarts agree.

The functions here are pure over two mappings (Faust tables in the worker, dicts in
tests); values are replaced, never mutated in place, so every change reaches a changelog.
``IdentityStage.process`` applies them to a batch of work from the gate, the release
stage and the links stage (one partition, so joins are serial and deterministic).

Being serial also makes identity where a withdrawal is final for events still on their
way: it keeps the ids of withdrawn consents (``identity-withdrawn``, from each erasure the
release stage sends), and an event under one of them that arrives after the erasure is
dropped (fate ``erased``) instead of bringing the person back. The gate that admitted it
may have decided on a copy of the consents that had not yet seen the withdrawal (another
worker's global table).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hub import batch
from hub.batch import Op
from hub.models import IdentityLink, LinkStatus
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
    value_bytes,
)
from hub.stages.hops import OP, SOURCE, each_item, framed_in, to_views
from hub.stages.linked import Linked, components
from hub.stages.review import Review, conflicts, joinable

__all__ = [
    "PERSON_MAX_BYTES",
    "RECORD_SOURCE",
    "SCHEME_STRENGTH",
    "IdentityChange",
    "IdentityStage",
    "IdentityStore",
    "forget",
    "join",
    "mint",
    "person_id_for",
    "retract",
    "strength",
]

SCHEME_STRENGTH = ("nhs", "upn", "council", "person")
# Source of an edge seen on a partner's record (both identifiers on one event), followed by
# ":<partner id>".
RECORD_SOURCE = "record"

Person = dict[str, Any]  # {"tokens": [...], "edges": {"a|b": [sources]}}


def strength(token: str) -> tuple[int, str]:
    """Sort key: NHS number before UPN before council reference before the name key."""
    scheme = token.split(":", 1)[0]
    rank = SCHEME_STRENGTH.index(scheme) if scheme in SCHEME_STRENGTH else len(SCHEME_STRENGTH)
    return rank, token


def person_id_for(token: str) -> str:
    """The person id minted from ``token``: 'p-' + 20 base32 characters of its hash."""
    digest = hashlib.sha256(b"person|" + token.encode()).digest()
    return "p-" + base64.b32encode(digest).decode()[:20].lower()


def mint(tokens: Iterable[str]) -> str:
    """The id of the person made of ``tokens``: from the strongest one."""
    return person_id_for(min(tokens, key=strength))


@dataclass
class IdentityStore:
    """The identity state: token → person id, and person id → tokens and edges."""

    token_person: MutableMapping[str, str]
    people: MutableMapping[str, Person]


@dataclass
class IdentityChange:
    """What a join or retraction did, for the view to follow."""

    person_id: str | None = None
    merged: list[str] = field(default_factory=list)  # old ids now part of person_id
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # old → new → tokens


def _edge(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def join(
    store: IdentityStore, tokens: Iterable[str], source: str = RECORD_SOURCE
) -> IdentityChange:
    """Record that ``tokens`` are one person (evidence ``source``); merge people if needed."""
    ordered = sorted(set(tokens), key=strength)
    people = sorted({p for t in ordered if (p := store.token_person.get(t)) is not None})
    # Each token to the strongest: a partner retracts the pair (strongest, wrong one).
    new_edges = {_edge(ordered[0], other) for other in ordered[1:]}
    if len(people) == 1:
        current = store.people[people[0]]
        unchanged = all(t in current["tokens"] for t in ordered) and all(
            source in current["edges"].get(e, ()) for e in new_edges
        )
        if unchanged:  # the common case: a known person, nothing new to record
            return IdentityChange(person_id=people[0])
    all_tokens = set(ordered)
    edges: dict[str, list[str]] = {}
    for person in people:
        record = store.people[person]
        all_tokens.update(record["tokens"])
        for key, sources in record["edges"].items():
            edges[key] = sorted(set(edges.get(key, [])) | set(sources))
    for key in new_edges:
        edges[key] = sorted(set(edges.get(key, [])) | {source})
    person_id = mint(all_tokens)
    for person in people:
        if person != person_id:
            del store.people[person]
    store.people[person_id] = {"tokens": sorted(all_tokens), "edges": edges}
    for token in all_tokens:
        if store.token_person.get(token) != person_id:
            store.token_person[token] = person_id
    return IdentityChange(person_id=person_id, merged=[p for p in people if p != person_id])


def retract(store: IdentityStore, a: str, b: str, *sources: str) -> IdentityChange:
    """Withdraw ``sources``' evidence that ``a`` and ``b`` are one person; split if it was all.

    A source also matches evidence recorded as ``source:detail`` (e.g. a link's method).
    """
    person_id = store.token_person.get(a)
    if person_id is None or store.token_person.get(b) != person_id:
        return IdentityChange()
    record = store.people[person_id]
    edges = {key: list(sources) for key, sources in record["edges"].items()}
    key = _edge(a, b)
    remaining = [
        s
        for s in edges.get(key, [])
        if not any(s == source or s.startswith(f"{source}:") for source in sources)
    ]
    if remaining:
        edges[key] = remaining
    else:
        edges.pop(key, None)
    found = components(record["tokens"], edges)
    if len(found) == 1:
        store.people[person_id] = {"tokens": record["tokens"], "edges": edges}
        return IdentityChange(person_id=person_id)
    parts: dict[str, list[str]] = {}
    del store.people[person_id]
    for component in found:
        new_id = mint(component)
        parts[new_id] = sorted(component)
        store.people[new_id] = {
            "tokens": parts[new_id],
            "edges": {k: v for k, v in edges.items() if k.split("|", 1)[0] in component},
        }
        for token in component:
            store.token_person[token] = new_id
    return IdentityChange(splits={person_id: parts})


def forget(store: IdentityStore, tokens: Iterable[str]) -> dict[str, list[str]]:
    """Erase every person any of ``tokens`` belongs to; returns their ids, each with every
    token it had (more than ``tokens``, when the person was joined)."""
    people = sorted({p for t in tokens if (p := store.token_person.get(t)) is not None})
    erased: dict[str, list[str]] = {}
    for person in people:
        erased[person] = list(store.people[person]["tokens"])
        for token in erased[person]:
            store.token_person.pop(token, None)
        del store.people[person]
    return erased


_ERASED = ((OP, b"erase"),)  # the header on a hub.events tombstone

# The most one person's identity row may take (tokens and edges, as JSON): under the
# broker's 1 MiB message limit. Evidence that would grow a person past it is refused.
PERSON_MAX_BYTES = 512 * 1024


class IdentityStage:
    """Maps each admitted event's tokens to a person; publishes it to hub.events by person;
    applies partners' links and erasures; hands the views their work (by person)."""

    name = "identity"
    tables: tuple[str, ...] = (
        "identity-tokens",
        "identity-people",
        "identity-review",
        "identity-withdrawn",
        "linked",
        "fates",
    )
    writes: tuple[tuple[str, ...], ...] = (
        ("fates",),
        ("identity-tokens", "identity-people", "identity-review", "identity-withdrawn", "linked"),
    )

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def framed(self, records: Sequence[Record]) -> Iterator[bytes | None]:
        """The framed events and links inside ``records`` (the runtime loads their schemas)."""
        return framed_in(records, self.ctx.internal.identity)

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply one batch of batch records (events, links, erasures), item by item."""
        effects = Effects()
        fates = Fates(state["fates"], effects, self.ctx.topics)
        share = (self.ctx.internal.identity, 0)  # identity has one partition
        work = _Work(
            self.ctx,
            state,
            effects,
            now,
            lambda source, fate: fates.settle_source(source, fate, share),
        )
        for_views: list[batch.Item] = []

        def handle(item: batch.Item) -> None:
            outputs: list[Output] = []
            views: list[batch.Item] = []
            work.item(item, outputs, views)
            effects.outputs += outputs  # only once the item is done: nothing half-sent
            for_views.extend(views)

        def one(record: Record) -> None:
            def refused(item: batch.Item, reason: str) -> None:
                fates.refuse_item(record, item, self.name, reason, now, share)

            each_item(self.name, record, state, effects, handle, refused)

        run_each(self.name, records, state, effects, now, one)
        effects.outputs += to_views(self.ctx, for_views)
        return effects


class _Work:
    """One identity batch's rules, item by item."""

    def __init__(
        self,
        ctx: Context,
        state: State,
        effects: Effects,
        now: datetime,
        settle: Callable[[str, str], None],
    ) -> None:
        self.ctx, self.effects, self.now, self.settle = ctx, effects, now, settle
        self.withdrawn = state["identity-withdrawn"]
        self.store = IdentityStore(state["identity-tokens"], state["identity-people"])
        self.review = Review(state["identity-review"])
        self.linked = Linked(state["linked"])

    def item(self, item: batch.Item, outputs: list[Output], views: list[batch.Item]) -> None:
        store = self.store
        if item.basis and item.basis in self.withdrawn:  # it went while this was on its way
            if item.op is Op.EVENT:
                self.settle(item.source, "erased")
            self.effects.audits.append(audit_record("identity.drop.withdrawn", None, self.now))
        elif item.op is Op.EVENT:
            partner = self.ctx.topics.partner_of(item.source.split(":", 1)[0]) or "unknown"
            tokens, left = joinable(store.token_person, store.people, item.tokens, strength)
            if left:  # it would give someone a second NHS number: for review, not a merge
                self._refuse_join(item.tokens, "event", partner)
            change = join(store, tokens, f"{RECORD_SOURCE}:{partner}")
            assert change.person_id is not None
            self._check_size(change.person_id)
            views += _merges(change.merged, change.person_id)
            key = change.person_id.encode()
            partition = batch.partition_for(key, self.ctx.partitions)
            headers = ((SOURCE, item.source.encode()),)
            outputs.append(Output(self.ctx.topics.events, partition, key, item.raw, headers))
            views.append(replace(item, key=change.person_id, tokens=[]))
        elif item.op is Op.LINK:
            views += self._link(self.ctx.serde.decode(item.raw, IdentityLink))
        elif item.op is Op.ERASE:
            self.withdrawn[item.key] = self.now.isoformat()  # consent ids are never reused
            basis = f"consent:{item.key}"
            self.review.forget(item.tokens)
            erased = forget(store, item.tokens)
            for person_id in erased:
                views.append(batch.Item(Op.ERASE, person_id, basis=basis))
                # hub.events readers learn of it: a tombstone keyed by the person.
                key = person_id.encode()
                partition = batch.partition_for(key, self.ctx.partitions)
                outputs.append(Output(self.ctx.topics.events, partition, key, None, _ERASED))
            self.linked.forget([t for tokens in erased.values() for t in tokens])
        else:
            raise Refused(f"identity has no operation {item.op!r}")

    def _check_size(self, person_id: str) -> None:
        size = value_bytes(self.store.people[person_id])
        if size > PERSON_MAX_BYTES:
            raise Refused(
                f"identity of person {person_id} would take {size} bytes "
                f"({PERSON_MAX_BYTES} at most): too many identifiers joined into one person"
            )

    def _refuse_join(self, tokens: list[str], kind: str, partner: str) -> None:
        listed = self.review.add(tokens, kind, partner, self.now)
        self.effects.count("placehub_identity_joins_refused", "listed" if listed else "full")

    def _link(self, link: IdentityLink) -> list[batch.Item]:
        """Join or split people on a partner's link assertion; what the views must do."""
        store = self.store
        # The link's id and its partner name the evidence, so only the partner that asserted
        # a link can retract it (another partner reusing the id names other evidence).
        evidence = f"link:{link.link_id}:{link.partner_id}"
        if link.status is LinkStatus.ASSERTED:
            if conflicts(store.token_person, store.people, link.tokens):
                self._refuse_join(link.tokens, "link", link.partner_id)
                return []
            method = f"{evidence}:{link.method.value.lower()}"  # how it was made stays too
            change = join(store, link.tokens, method)
            if change.person_id is not None:
                self._check_size(change.person_id)
                self.linked.update(store.people[change.person_id])
            return _merges(change.merged, change.person_id)
        # A partner's retraction withdraws its own records' evidence for the pair too.
        records = f"{RECORD_SOURCE}:{link.partner_id}"
        change = retract(store, link.tokens[0], link.tokens[1], evidence, records)
        for token in link.tokens:  # its person, or the people it split into
            if (person_id := store.token_person.get(token)) is not None:
                self.linked.update(store.people[person_id])
        return [batch.Item(Op.SPLIT, old, parts=parts) for old, parts in change.splits.items()]


def _merges(merged: list[str], into: str | None) -> list[batch.Item]:
    """Tell the views of people merged into ``into`` to hand their entries over."""
    assert into is not None or not merged
    return [batch.Item(Op.MERGE, old, into=into or "") for old in merged]
