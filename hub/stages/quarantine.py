"""Quarantine and release: events without a lawful basis yet are held until one arrives.

The release stage reads three topics, all keyed by consent (or agreement) id and so
co-partitioned: ``consent.records`` (the consents table), ``hub.quarantine`` (events the
gate could not admit yet) and the internal control topic (expiry checks the maintenance
timer sends). Its rules:

- **hold**: an event with no basis is held under its basis id, once per event id; another
  copy of a held event is a ``duplicate``; a hold that would not fit in one table record
  is refused (dead-lettered with the reason).
- **release**: a consent that arrives (or an event whose basis is live) sends the held
  events on to identity.
- **withdraw**: a withdrawn or expired consent drops what it held (``dropped``, audited)
  and asks identity to erase what it shared.
- **expire**: a hold older than the quarantine period is dropped (``dropped``, audited).
- **recheck**: holds under a live consent are tried again at every maintenance tick, since
  a partner's link may since have joined their identifiers to the consent's subject.
- **links** under a consent (from the links stage, on the control topic) follow the same
  rules: released to identity when the consent is live and covers one of their
  identifiers, held while the consent is unknown, dropped (audited) when it is withdrawn,
  dead-lettered when it does not cover them. Links are not partner events, so they are in
  no partner's books. A retraction passes at once, and takes a held assertion with it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hub import batch
from hub.batch import Op
from hub.errors import InputError
from hub.models import ConsentRecord, ConsentStatus, IdentityLink, LinkStatus, PartnerEvent
from hub.stages.accounting import Fates
from hub.stages.basis import Consents
from hub.stages.context import Context
from hub.stages.effects import (
    Effects,
    Output,
    Pending,
    Record,
    State,
    audit_record,
    run_each,
    value_bytes,
)
from hub.stages.hops import OP, SOURCE, event_item, to_identity
from hub.stages.links import LINK_OP, link_item

__all__ = ["HELD_MAX_BYTES", "Check", "ReleaseStage", "due_checks", "held_key", "misplaced"]

# The most one basis's holds may take in its table record: under the broker's 1 MiB
# message limit with room for Kafka's own framing.
HELD_MAX_BYTES = 768 * 1024


class Check(StrEnum):
    """A check the maintenance timer asks the release stage to make (the ``OP`` header)."""

    EXPIRE_CONSENT = "expire-consent"  # withdraw the consent if it has expired
    EXPIRE_HOLDS = "expire-holds"  # drop the basis's holds past the quarantine period
    RECHECK_HOLDS = "recheck-holds"  # try a live consent's holds again (links may cover them)


def held_key(event: PartnerEvent) -> str:
    """The id an event without a basis is held under (what would release it)."""
    basis = event.basis
    return basis.consent_id or basis.agreement_id or event.event_id


def misplaced(record: Record, partitions: int) -> str:
    """Why a consent record is on the wrong partition (or ''): consents must meet the
    events they release, which the hub partitions with Kafka's default (murmur2)."""
    expected = batch.partition_for(record.key or b"", partitions)
    if record.partition == expected:
        return ""
    return (
        f"consent record is on partition {record.partition} but its key belongs on partition "
        f"{expected}: produce consent.records with Kafka's default (murmur2) partitioner "
        "(librdkafka clients: partitioner=murmur2_random)"
    )


class ReleaseStage:
    """Keeps consents and holds; releases, drops and erases (module docstring)."""

    name = "release"
    tables: tuple[str, ...] = ("consents", "held", "fates", "linked")  # linked: read only
    writes: tuple[tuple[str, ...], ...] = (("fates",), ("consents", "held"))

    def __init__(self, ctx: Context, consents: Consents) -> None:
        self.ctx = ctx
        self.consents = consents

    def process(self, records: Sequence[Record], state: State, now: datetime) -> Effects:
        """Apply one batch of consents, quarantined events and expiry checks."""
        effects = Effects()
        released = Pending()  # undone with the record that released them, if it fails
        state.extras.append(released)
        batch_ = _Batch(self, state, effects, released, now)
        run_each(self.name, records, state, effects, now, batch_.one, batch_.failed)
        # Released events go on before their holds go: a crash in between releases
        # them again (the view knows their sources), it never loses one.
        effects.outputs[:0] = to_identity(self.ctx, released)
        return effects


class _Batch:
    """One release batch in progress (the stage's rules, record by record)."""

    def __init__(
        self,
        stage: ReleaseStage,
        state: State,
        effects: Effects,
        released: list[batch.Item],
        now: datetime,
    ) -> None:
        self.ctx, self.book = stage.ctx, stage.consents
        self.consents, self.held, self.linked = state["consents"], state["held"], state["linked"]
        self.fates = Fates(state["fates"], effects, stage.ctx.topics)
        self.effects, self.released, self.now = effects, released, now
        self.record: Record | None = None
        self._held_bytes: dict[str, int] = {}  # basis → its holds' size, as this batch grew it

    def one(self, record: Record) -> None:
        self.record = record
        op = record.headers.get(OP, b"").decode()
        key = (record.key or b"").decode()
        if record.topic == self.ctx.topics.consent:
            if record.value is not None:  # a tombstone (the hub's own, after a withdrawal)
                self._consent(record)
        elif op == Check.EXPIRE_CONSENT:
            consent = self.book.live(key, self.consents)
            if consent is not None and not consent.is_live(self.now):
                self._withdraw(consent.consent_id, consent.partner_id)
        elif op == Check.EXPIRE_HOLDS:
            self._drop_expired(key)
        elif op == Check.RECHECK_HOLDS:
            self._recheck(key)
        elif op == LINK_OP.decode() and record.value is not None:
            self._link(record.value, record.headers.get(SOURCE, b"").decode())
        elif record.value is not None:
            self._hold_or_release(record.value, record.headers.get(SOURCE, b"").decode())

    def failed(self, record: Record, reason: str) -> None:
        """A quarantined event that broke the stage is dead-lettered: its partner's books say so."""
        source = record.headers.get(SOURCE, b"").decode()
        partner = self.fates.partner_of(source)
        if record.topic == self.ctx.topics.quarantine and partner:
            self._fate(source, "dead_lettered", partner)

    def _fate(self, source: str, fate: str, partner: str) -> None:
        assert self.record is not None
        self.fates.settle(source, fate, partner, self.ctx.topics.consent, self.record.partition)

    def _consent(self, record: Record) -> None:
        problem = misplaced(record, self.ctx.partitions)
        if problem:
            self._reject(record, problem)
            return
        try:
            consent = self.ctx.serde.decode(record.value, ConsentRecord)
        except InputError as exc:
            self._reject(record, f"{type(exc).__name__}: {exc}")
            return
        stored = self.consents.get(consent.consent_id)
        owner = stored.get("partner_id") if stored else None
        if owner is not None and owner != consent.partner_id:
            self._reject(record, "consent_id: belongs to the partner that first published it")
            return
        if consent.status is ConsentStatus.WITHDRAWN:
            # Erased with what the hub stored, never the tokens the withdrawal names.
            self._withdraw(consent.consent_id, consent.partner_id)
            return
        if stored and stored.get("withdrawn"):
            self._reject(
                record,
                "consent_id: a withdrawn consent cannot be given again; record a new consent "
                "with a new id",
            )
            return
        self.consents[consent.consent_id] = consent.model_dump(mode="json")
        self._recheck(consent.consent_id)

    def _recheck(self, key: str) -> None:
        """Try the holds under ``key`` again (a consent arrived, or a partner's link may
        now cover their identifiers); those still without a basis keep their hold time."""
        held: list[dict[str, Any]] = self.held.pop(key, None) or []
        self._held_bytes.pop(key, None)
        for item in held:
            again = self._link if item.get("link_id") else self._hold_or_release
            again(base64.b64decode(item["raw"]), item["source"], item["held_at"])

    def _reject(self, record: Record, reason: str) -> None:
        self.effects.dead_letter(record, "release", reason, self.now)

    def _withdraw(self, consent_id: str, partner_id: str) -> None:
        """Consent withdrawn or expired: forget it (keeping only who owns the id, so it can
        be neither given again nor taken over), drop what it held, erase what it shared
        (by the subject the hub stored), and tombstone its records on the consent topic so
        compaction leaves no tokens there."""
        stored = self.book.live(consent_id, self.consents)
        self.consents[consent_id] = {"withdrawn": True, "partner_id": partner_id}
        self._held_bytes.pop(consent_id, None)
        for item in self.held.pop(consent_id, None) or []:
            self._drop(item, "quarantine.drop.withdrawn")
        if stored is not None:
            erase = batch.Item(Op.ERASE, consent_id, tokens=stored.subject_tokens)
            self.released.append(erase)
        key = consent_id.encode()
        topic = self.ctx.topics.consent
        self.effects.outputs.append(
            Output(topic, batch.partition_for(key, self.ctx.partitions), key, None)
        )

    def _hold_or_release(self, raw: bytes, source: str, held_at: str | None = None) -> None:
        """Release a quarantined event if it now has a basis, else hold it (once)."""
        event = self.ctx.serde.decode(raw, PartnerEvent)  # it passed the gate's decode once
        problem = self.book.problem(
            event, self.consents, self.ctx.agreements, self.now, self.linked
        )
        if problem is None:
            self.released.append(event_item(event, raw, source))
            self.effects.count("placehub_quarantine_released")
            return
        key = held_key(event)
        if (self.consents.get(key) or {}).get("withdrawn"):  # it can never be released
            self._drop(
                {"source": source, "partner_id": event.partner_id}, "quarantine.drop.withdrawn"
            )
            return
        held: list[dict[str, Any]] = list(self.held.get(key) or [])
        known = next((i for i in held if i.get("event_id") == event.event_id), None)
        if known is not None:
            if known["source"] != source:  # another copy, not the same record read again
                self._fate(source, "duplicate", event.partner_id)
            return
        item = {
            "event_id": event.event_id,
            "partner_id": event.partner_id,
            "raw": base64.b64encode(raw).decode(),
            "source": source,
            "held_at": held_at or self.now.isoformat(),
            "partition": self.record.partition if self.record else 0,
        }
        full = self._hold(key, held, item)
        if full:
            self._fate(source, "dead_lettered", event.partner_id)
            assert self.record is not None
            self._reject(self.record, full)
        elif held_at is None:  # newly held, not held again after a recheck
            self.fates.count(event.partner_id, "held_in_quarantine")

    def _hold(self, key: str, held: list[dict[str, Any]], item: dict[str, Any]) -> str:
        """Hold ``item`` under ``key`` after ``held``; why not ('' when held): it is full."""
        # The list's size is measured once a batch, then grown by each item held (holding
        # thousands of events for one basis measured the whole list each time).
        size = self._held_bytes.get(key)
        size = (value_bytes(held) if size is None else size) + value_bytes(item) + 1
        if size > HELD_MAX_BYTES:
            return (
                f"quarantine for basis {key} is full ({len(held)} records held, "
                f"{HELD_MAX_BYTES} bytes at most): send its consent or agreement"
            )
        self.held[key] = [*held, item]
        self._held_bytes[key] = size
        return ""

    def _link(self, raw: bytes, source: str, held_at: str | None = None) -> None:
        """Release a link under a consent to identity if the consent covers it, else hold,
        drop or dead-letter it (module docstring)."""
        link = self.ctx.serde.decode(raw, IdentityLink)  # it passed the links stage's decode
        assert link.basis is not None and link.basis.consent_id is not None
        key, named = link.basis.consent_id, (link.link_id, link.partner_id)
        others = [
            i for i in self.held.get(key) or [] if (i.get("link_id"), i["partner_id"]) != named
        ]
        if link.status is LinkStatus.RETRACTED:
            if len(others) < len(self.held.get(key) or []):  # it was held: it goes too
                self._set_held(key, others)
            self.released.append(link_item(link, raw))
            return
        problem = self.book.link_problem(
            link, self.consents, self.ctx.agreements, self.now, self.linked
        )
        stored = self.consents.get(key) or {}
        if problem is None:
            self.released.append(link_item(link, raw))
            return
        if stored.get("withdrawn"):
            self.effects.audits.append(audit_record("quarantine.drop.withdrawn", None, self.now))
            return
        if not stored:  # its consent has not arrived yet: held like an event (expiring too)
            item = {"link_id": link.link_id, "partner_id": link.partner_id, "source": source}
            item |= {
                "raw": base64.b64encode(raw).decode(),
                "held_at": held_at or self.now.isoformat(),
            }
            self._held_bytes.pop(key, None)  # measured again: a held copy may be replaced
            problem = self._hold(key, others, item)
            if not problem:
                return
        self.effects.dead_letter(Record.at(source, raw), "release", problem, self.now)

    def _set_held(self, key: str, held: list[dict[str, Any]]) -> None:
        """Replace ``key``'s holds with ``held`` (none: the row goes)."""
        self._held_bytes.pop(key, None)
        if held:
            self.held[key] = held
        elif key in self.held:
            del self.held[key]

    def _drop_expired(self, key: str) -> None:
        held = self.held.get(key) or []
        hold = self.ctx.quarantine_hold
        expired = [i for i in held if self.now - datetime.fromisoformat(i["held_at"]) >= hold]
        if not expired:
            return
        self._set_held(key, [i for i in held if i not in expired])
        for item in expired:
            self._drop(item, "quarantine.drop.expired")

    def _drop(self, item: dict[str, Any], action: str) -> None:
        if not item.get("link_id"):  # links are in no partner's books
            self._fate(item["source"], "dropped", item["partner_id"])
        self.effects.audits.append(audit_record(action, None, self.now))


def due_checks(
    consents: Mapping[str, Any], held: Mapping[str, Any], hold: timedelta, now: datetime
) -> Iterator[tuple[Check, str]]:
    """(check, key) for every consent past its expiry and every basis with a hold past
    ``hold``: the maintenance timer sends them to the release stage, which owns the rows."""
    for consent_id, stored in consents.items():
        expires = stored.get("expires_at") if stored else None
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
            yield Check.EXPIRE_CONSENT, consent_id
    for key, items in held.items():
        if any(now - datetime.fromisoformat(i["held_at"]) >= hold for i in items or []):
            yield Check.EXPIRE_HOLDS, key
        elif items and (consents.get(key) or {}).get("subject_tokens"):
            yield Check.RECHECK_HOLDS, key  # held under a live consent: a link may cover it
