"""Every stage's ``process`` with plain dicts: hold, release, withdraw, expire, merge, split,
erase, retention, size bounds, and records that cannot be read or processed."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from hub import batch
from hub.agreements import AgreementBook
from hub.batch import Op
from hub.models import (
    ConsentStatus,
    DeadLetter,
    LinkStatus,
    PartnerEvent,
)
from hub.serde import Serde
from hub.stages import accounting
from hub.stages.basis import Consents
from hub.stages.context import Context, Internal
from hub.stages.effects import Effects, Record, State, run_each
from hub.stages.gate import GateStage
from hub.stages.hops import OP, REASON, SOURCE
from hub.stages.hops import event_item as hop_item
from hub.stages.identity import IdentityStage, person_id_for
from hub.stages.linked import linked_to
from hub.stages.quarantine import HELD_MAX_BYTES, Check, ReleaseStage, due_checks
from hub.stages.view import MAX_SOURCES, PersonView, ViewStage
from hub.topics import Topics
from tests.unit import factories
from tests.unit.fakes import MemoryRegistry

NOW = factories.WHEN + timedelta(hours=1)
SERDE = Serde(MemoryRegistry())
CTX = Context(
    topics=Topics(),
    internal=Internal("hub"),
    partitions=4,
    serde=SERDE,
    agreements=AgreementBook([]),
    consent_retention=timedelta(days=365),
    quarantine_hold=timedelta(days=7),
)
HOUSING = CTX.topics.partner("council-housing")


def framed(event: PartnerEvent) -> bytes:
    return SERDE.encode(event, f"{HOUSING}-value")


def record(
    topic: str, value: bytes | None, offset: int = 0, partition: int = 0, **kw: Any
) -> Record:
    return Record(topic, partition, offset, kw.get("key"), value, kw.get("headers", {}))


def run(stage: Any, records: list[Record], **tables: dict[Any, Any]) -> tuple[Effects, State]:
    state = State.of({name: tables.get(name.replace("-", "_"), {}) for name in stage.tables})
    return stage.process(records, state, NOW), state


def written(state: State, table: str) -> dict[Any, Any]:
    return {key: value for _, key, value in state[table].writes()}


def items_on(effects: Effects, topic: str) -> list[batch.Item]:
    return [i for out in effects.outputs if out.topic == topic for i in batch.decode(out.value)]


# -- gate ------------------------------------------------------------------------------


def test_gate_admits_holds_and_dead_letters_and_counts_each_record_once() -> None:
    consents = {"c-1": factories.consent().model_dump(mode="json")}
    good, early = factories.event(), factories.event(consent_id="c-9")
    records = [
        record(HOUSING, framed(good), 0),
        record(HOUSING, framed(early), 1),
        record(HOUSING, b"\x00garbage", 2),
    ]
    effects, state = run(GateStage(CTX, Consents()), records, consents=consents)
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == [good.event_id]
    (held,) = [o for o in effects.outputs if o.topic == CTX.topics.quarantine]
    assert held.key == b"c-9" and dict(held.headers)[SOURCE] == records[1].source.encode()
    assert [d.source_offset for d in effects.dead_letters] == [2]
    ledger = written(state, "ledger")
    assert ledger[f"{HOUSING}|0"]["partners"]["council-housing"] == {
        "received": 3,
        "dead_lettered": 1,
    }
    _, state = run(GateStage(CTX, Consents()), records, consents=consents, ledger=ledger)
    assert written(state, "ledger") == {}  # read again after a crash: not counted twice


def test_a_consent_admits_only_events_whose_every_identifier_its_subject_holds() -> None:
    """A's consent does not admit an event that also carries B's identifier (identity
    would join A and B on it); it is held with the reason instead."""
    consents = {"c-1": factories.consent(tokens=[factories.NHS_TOKEN]).model_dump(mode="json")}
    own = factories.event(tokens=[factories.NHS_TOKEN])
    other = factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    records = [record(HOUSING, framed(own), 0), record(HOUSING, framed(other), 1)]
    effects, _ = run(GateStage(CTX, Consents()), records, consents=consents)
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == [own.event_id]
    (held,) = [o for o in effects.outputs if o.topic == CTX.topics.quarantine]
    assert b"an identifier the consent's subject was not given with" in dict(held.headers)[REASON]


def test_identifiers_a_partner_linked_to_the_consents_subject_are_covered() -> None:
    """A consent covers its subject as a person: once a partner links the council ref to
    the NHS number, an event carrying both is admitted (held before), and a hold under the
    consent is released at the next recheck."""
    consents = {"c-1": factories.consent(tokens=[factories.NHS_TOKEN]).model_dump(mode="json")}
    both = factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    _, state = run(
        IdentityStage(CTX), [identity_record([link_item("council-housing", LinkStatus.ASSERTED)])]
    )
    linked = written(state, "linked")
    assert linked_to(linked, factories.NHS_TOKEN) == sorted(
        [factories.NHS_TOKEN, factories.COUNCIL_TOKEN]
    )
    effects, _ = run(
        GateStage(CTX, Consents()),
        [record(HOUSING, framed(both), 0)],
        consents=consents,
        linked=linked,
    )
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == [both.event_id]

    _, state = run(ReleaseStage(CTX, Consents()), [quarantined(both, 0)], consents=consents)
    held = written(state, "held")
    assert [i["event_id"] for i in held["c-1"]] == [both.event_id]  # not covered yet
    assert [c for c in due_checks(consents, held, timedelta(days=7), NOW)] == [
        (Check.RECHECK_HOLDS, "c-1")
    ]
    check = record(CTX.internal.control, None, 1, key=b"c-1", headers={OP: b"recheck-holds"})
    effects, state = run(
        ReleaseStage(CTX, Consents()), [check], consents=consents, held=held, linked=linked
    )
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == [both.event_id]
    assert written(state, "held") == {"c-1": None}

    retracted = link_item("council-housing", LinkStatus.RETRACTED)
    _, state2 = run(
        IdentityStage(CTX),
        [identity_record([link_item("council-housing", LinkStatus.ASSERTED), retracted])],
    )
    assert linked_to(written(state2, "linked"), factories.NHS_TOKEN) == []


def test_a_record_that_breaks_a_stage_is_undone_and_dead_lettered() -> None:
    table: dict[str, int] = {}
    state, effects = State.of({"t": table}), Effects()

    def handle(r: Record) -> None:
        state["t"][r.source] = 1
        effects.count("placehub_view_updates")
        if r.offset == 1:
            raise OverflowError("a value a partner sent")

    records = [record("topic", b"a", 0), record("topic", b"b", 1), record("topic", b"c", 2)]
    run_each("gate", records, state, effects, NOW, handle)
    assert sorted(written(state, "t")) == ["topic:0:0", "topic:0:2"]
    (letter,) = effects.dead_letters
    assert isinstance(letter, DeadLetter) and letter.source_offset == 1
    assert letter.reason == "gate could not process the record: OverflowError"  # no value
    assert effects.metrics[("placehub_view_updates", ())] == 2


# -- release ---------------------------------------------------------------------------


def quarantined(event: PartnerEvent, offset: int, source_offset: int | None = None) -> Record:
    source = f"{HOUSING}:0:{offset if source_offset is None else source_offset}"
    key = (event.basis.consent_id or "").encode()
    return record(
        CTX.topics.quarantine, framed(event), offset, key=key, headers={SOURCE: source.encode()}
    )


def consent_record(**kw: Any) -> Record:
    consent = factories.consent(**kw)
    key = consent.consent_id.encode()
    partition = batch.partition_for(key, CTX.partitions)
    value = SERDE.encode(consent, "consent-value")
    return record(CTX.topics.consent, value, 0, partition, key=key)


def test_release_holds_once_marks_a_resent_copy_duplicate_then_releases_on_consent() -> None:
    event = factories.event(consent_id="c-1")
    copy = quarantined(event, 1, source_offset=7)  # the partner sent the event again
    _, state = run(
        ReleaseStage(CTX, Consents()), [quarantined(event, 0), quarantined(event, 0), copy]
    )
    held = written(state, "held")
    assert [i["event_id"] for i in held["c-1"]] == [event.event_id]
    assert written(state, "fates") == {
        f"{HOUSING}:0:7": accounting.fate_value(
            "duplicate", "council-housing", CTX.topics.consent, 0
        )
    }
    released, state = run(ReleaseStage(CTX, Consents()), [consent_record()], held=held)
    assert [i.key for i in items_on(released, CTX.internal.identity)] == [event.event_id]
    assert written(state, "held") == {"c-1": None}


def test_withdrawal_drops_holds_with_audit_and_erases_by_the_stored_subject() -> None:
    """The erasure uses the tokens the hub stored with the consent, never the ones the
    withdrawal names (a forged one would wipe someone else), and the consent's records are
    tombstoned so compaction leaves no tokens on the topic."""
    event = factories.event(consent_id="c-9", tokens=[factories.COUNCIL_TOKEN])
    consents = {
        "c-9": factories.consent("c-9", tokens=[factories.NHS_TOKEN]).model_dump(mode="json")
    }
    _, state = run(ReleaseStage(CTX, Consents()), [quarantined(event, 0)], consents={})
    held = written(state, "held")
    withdrawal = consent_record(
        consent_id="c-9", status=ConsentStatus.WITHDRAWN, tokens=[factories.COUNCIL_TOKEN]
    )
    effects, state = run(ReleaseStage(CTX, Consents()), [withdrawal], held=held, consents=consents)
    assert written(state, "consents") == {
        "c-9": {"withdrawn": True, "partner_id": "council-housing"}
    }
    assert written(state, "fates")[f"{HOUSING}:0:0"]["fate"] == "dropped"
    assert [a.action for a in effects.audits] == ["quarantine.drop.withdrawn"]
    (erase,) = items_on(effects, CTX.internal.identity)
    assert (erase.op, erase.key, erase.tokens) == ("erase", "c-9", [factories.NHS_TOKEN])
    (tombstone,) = [o for o in effects.outputs if o.topic == CTX.topics.consent]
    assert (tombstone.key, tombstone.value, tombstone.partition) == (
        b"c-9",
        None,
        withdrawal.partition,
    )


def test_a_withdrawal_of_a_consent_never_stored_erases_nothing() -> None:
    effects, state = run(
        ReleaseStage(CTX, Consents()), [consent_record(status=ConsentStatus.WITHDRAWN)]
    )
    assert items_on(effects, CTX.internal.identity) == []
    assert written(state, "consents") == {
        "c-1": {"withdrawn": True, "partner_id": "council-housing"}
    }


def test_a_consent_id_belongs_to_its_first_partner_and_cannot_be_given_again() -> None:
    stored = {"c-1": factories.consent().model_dump(mode="json")}
    takeover = consent_record(partner_id="city-health", status=ConsentStatus.WITHDRAWN)
    effects, state = run(ReleaseStage(CTX, Consents()), [takeover], consents=stored)
    assert written(state, "consents") == {}
    assert items_on(effects, CTX.internal.identity) == []
    assert "belongs to the partner that first published it" in effects.dead_letters[0].reason

    withdrawn = {"c-1": {"withdrawn": True, "partner_id": "council-housing"}}
    late = quarantined(factories.event(consent_id="c-1"), 0)  # nothing can release it now
    effects, state = run(ReleaseStage(CTX, Consents()), [late], consents=withdrawn)
    assert written(state, "held") == {}
    assert written(state, "fates")[f"{HOUSING}:0:0"]["fate"] == "dropped"
    assert [a.action for a in effects.audits] == ["quarantine.drop.withdrawn"]
    effects, state = run(ReleaseStage(CTX, Consents()), [consent_record()], consents=withdrawn)
    assert written(state, "consents") == {} and items_on(effects, CTX.internal.identity) == []
    assert "cannot be given again" in effects.dead_letters[0].reason


def test_the_hubs_own_tombstone_on_the_consent_topic_is_not_a_dead_letter() -> None:
    tombstone = record(CTX.topics.consent, None, 3, key=b"c-1")
    effects, _ = run(ReleaseStage(CTX, Consents()), [tombstone])
    assert effects.dead_letters == [] and effects.outputs == []


def test_holds_past_the_quarantine_period_are_dropped_with_audit() -> None:
    event = factories.event(consent_id="c-1")
    item = {
        "event_id": event.event_id,
        "partner_id": "council-housing",
        "raw": base64.b64encode(framed(event)).decode(),
        "source": f"{HOUSING}:0:3",
        "held_at": (NOW - timedelta(days=8)).isoformat(),
        "partition": 0,
    }
    check = record(
        CTX.internal.control, None, 0, key=b"c-1", headers={"placehub-op": b"expire-holds"}
    )
    effects, state = run(ReleaseStage(CTX, Consents()), [check], held={"c-1": [item]})
    assert written(state, "held") == {"c-1": None}
    assert written(state, "fates")[f"{HOUSING}:0:3"]["fate"] == "dropped"
    assert [a.action for a in effects.audits] == ["quarantine.drop.expired"]


def test_a_hold_that_would_not_fit_a_record_is_refused_with_a_fate() -> None:
    event = factories.event(consent_id="c-1")
    filler = [{"event_id": "x", "raw": "a" * HELD_MAX_BYTES, "source": "s"}]
    effects, state = run(
        ReleaseStage(CTX, Consents()), [quarantined(event, 5)], held={"c-1": filler}
    )
    assert written(state, "held") == {}
    assert written(state, "fates")[f"{HOUSING}:0:5"]["fate"] == "dead_lettered"
    assert "quarantine for basis c-1 is full" in effects.dead_letters[0].reason


# -- identity --------------------------------------------------------------------------


def identity_record(items: list[batch.Item], offset: int = 0) -> Record:
    return record(CTX.internal.identity, batch.encode(items), offset)


def test_identity_publishes_by_person_merges_and_erases() -> None:
    a = factories.event(tokens=[factories.COUNCIL_TOKEN])
    b = factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    items = [
        batch.Item(Op.EVENT, a.event_id, source="s-a", tokens=a.subject.tokens, raw=framed(a)),
        batch.Item(Op.EVENT, b.event_id, source="s-b", tokens=b.subject.tokens, raw=framed(b)),
    ]
    effects, state = run(IdentityStage(CTX), [identity_record(items)])
    council, nhs = person_id_for(factories.COUNCIL_TOKEN), person_id_for(factories.NHS_TOKEN)
    events = [o for o in effects.outputs if o.topic == CTX.topics.events]
    assert [o.key for o in events] == [council.encode(), nhs.encode()]
    assert events[1].partition == batch.partition_for(nhs.encode(), CTX.partitions)
    views = items_on(effects, CTX.internal.view)
    assert [(i.op, i.key, i.into) for i in views if i.op == "merge"] == [("merge", council, nhs)]
    tokens, people = written(state, "identity-tokens"), written(state, "identity-people")
    erase = batch.Item(Op.ERASE, "c-1", tokens=[factories.NHS_TOKEN])
    effects, state = run(
        IdentityStage(CTX),
        [identity_record([erase])],
        identity_tokens=tokens,
        identity_people=people,
    )
    assert [(i.op, i.key) for i in items_on(effects, CTX.internal.view)] == [("erase", nhs)]
    (tombstone,) = [o for o in effects.outputs if o.topic == CTX.topics.events]
    assert (tombstone.key, tombstone.value, dict(tombstone.headers)) == (
        nhs.encode(),
        None,
        {OP: b"erase"},
    )
    assert set(written(state, "identity-tokens").values()) == {None}


def test_an_event_under_a_consent_withdrawn_before_it_reached_identity_is_dropped() -> None:
    """With more than one worker, a gate may admit an event on a copy of the consents that
    has not seen the withdrawal yet; identity, serial and told of every erasure, drops it
    instead of bringing the person back (before, it was joined and published)."""
    erase = batch.Item(Op.ERASE, "c-1", tokens=[factories.NHS_TOKEN])
    late = factories.event(tokens=[factories.NHS_TOKEN])  # under c-1
    other = factories.event(tokens=[factories.COUNCIL_TOKEN], consent_id="c-2")
    items = [
        erase,
        hop_item(late, framed(late), f"{HOUSING}:0:7"),
        hop_item(other, framed(other), f"{HOUSING}:0:8"),
    ]
    effects, state = run(IdentityStage(CTX), [identity_record(items)])
    published = [o.key for o in effects.outputs if o.topic == CTX.topics.events and o.value]
    assert published == [person_id_for(factories.COUNCIL_TOKEN).encode()]
    assert fates_of(state) == {f"{HOUSING}:0:7": "erased"}
    assert set(written(state, "identity-withdrawn")) == {"c-1"}
    assert factories.NHS_TOKEN not in written(state, "identity-tokens")
    assert [a.action for a in effects.audits] == ["identity.drop.withdrawn"]


def test_a_join_that_would_give_a_person_two_nhs_numbers_goes_to_review() -> None:
    """An event joining two people with different NHS numbers is placed with its strongest
    identifier and listed for review instead of merging them; erasure clears the list."""
    other_nhs = factories.NHS_TOKEN.rsplit(":", 1)[0] + ":" + "B" * 43  # same key id
    a = factories.event(tokens=[factories.NHS_TOKEN])
    b = factories.event(tokens=[factories.COUNCIL_TOKEN])
    both = factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])

    def item(event: PartnerEvent, tokens: list[str], source: str) -> batch.Item:
        return batch.Item(Op.EVENT, event.event_id, source=source, tokens=tokens, raw=framed(event))

    items = [
        item(a, [factories.NHS_TOKEN], f"{HOUSING}:0:1"),
        item(b, [other_nhs, factories.COUNCIL_TOKEN], f"{HOUSING}:0:2"),
        item(both, [factories.NHS_TOKEN, factories.COUNCIL_TOKEN], f"{HOUSING}:0:3"),
    ]
    effects, state = run(IdentityStage(CTX), [identity_record(items)])
    people = {k: v for k, v in written(state, "identity-people").items() if v}
    assert len(people) == 2  # not merged
    events = [o.key for o in effects.outputs if o.topic == CTX.topics.events]
    assert events[2] == person_id_for(factories.NHS_TOKEN).encode()
    (row,) = written(state, "identity-review").values()
    assert row["tokens"] == sorted([factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    assert (row["kind"], row["partner"]) == ("event", "council-housing")
    tables = {
        "identity_tokens": written(state, "identity-tokens"),
        "identity_people": written(state, "identity-people"),
        "identity_review": written(state, "identity-review"),
    }
    link = factories.link("city-health", [factories.NHS_TOKEN, other_nhs], link_id="l-2")
    linked = batch.Item(Op.LINK, link.link_id, raw=SERDE.encode(link, "links-value"))
    effects, state = run(IdentityStage(CTX), [identity_record([linked])], **tables)
    assert items_on(effects, CTX.internal.view) == [] and written(state, "identity-people") == {}
    assert [r["kind"] for r in written(state, "identity-review").values()] == ["link"]
    erase = batch.Item(Op.ERASE, "c-1", tokens=[factories.NHS_TOKEN])
    _, state = run(IdentityStage(CTX), [identity_record([erase])], **tables)
    assert set(written(state, "identity-review").values()) == {None}


def link_item(partner: str, status: LinkStatus) -> batch.Item:
    link = factories.link(partner, status=status)
    return batch.Item(Op.LINK, link.link_id, raw=SERDE.encode(link, "links-value"))


def test_only_the_partner_that_asserted_a_link_can_retract_it() -> None:
    asserted = link_item("council-housing", LinkStatus.ASSERTED)
    _, state = run(IdentityStage(CTX), [identity_record([asserted])])
    tables = {
        "identity_tokens": written(state, "identity-tokens"),
        "identity_people": written(state, "identity-people"),
    }
    forged = link_item("city-health", LinkStatus.RETRACTED)  # the same link id
    effects, state = run(IdentityStage(CTX), [identity_record([forged])], **tables)
    assert items_on(effects, CTX.internal.view) == []
    assert written(state, "identity-tokens") == {}
    own = link_item("council-housing", LinkStatus.RETRACTED)
    effects, _ = run(IdentityStage(CTX), [identity_record([own])], **tables)
    assert [i.op for i in items_on(effects, CTX.internal.view)] == ["split"]


def test_identity_dead_letters_a_corrupt_batch_and_refuses_an_oversized_person() -> None:
    effects, _ = run(IdentityStage(CTX), [record(CTX.internal.identity, b"\x07junk", 4)])
    assert effects.dead_letters[0].source_offset == 4
    tokens = [f"council:{n:040d}" for n in range(12_000)]
    event = factories.event(tokens=[factories.NHS_TOKEN])
    item = batch.Item(Op.EVENT, event.event_id, source=f"{HOUSING}:0:9", tokens=tokens)
    effects, state = run(IdentityStage(CTX), [identity_record([item])])
    assert "too many identifiers joined into one person" in effects.dead_letters[0].reason
    assert written(state, "identity-people") == {}
    assert written(state, "fates")[f"{HOUSING}:0:9"]["fate"] == "dead_lettered"


# -- view ------------------------------------------------------------------------------

PERSON = person_id_for(factories.NHS_TOKEN)
VIEW_PARTITION = batch.partition_for(PERSON.encode(), CTX.partitions)


def view_record(items: list[batch.Item], offset: int = 0) -> Record:
    return record(CTX.internal.view, batch.encode(items), offset, VIEW_PARTITION)


def event_item(event: PartnerEvent, source: str) -> batch.Item:
    return batch.Item(Op.EVENT, PERSON, source=source, raw=framed(event))


def fates_of(state: State) -> dict[str, str]:
    return {source: value["fate"] for source, value in written(state, "fates").items()}


def test_view_folds_and_a_backfilled_event_past_retention_is_expired() -> None:
    new = factories.event()
    old = factories.event(occurred_at=NOW - timedelta(days=400))
    effects, state = run(
        ViewStage(CTX), [view_record([event_item(new, "s1"), event_item(old, "s2")])]
    )
    stored = written(state, "views")[PERSON.encode()]
    assert [e["event_id"] for e in stored["entries"]] == [new.event_id]
    assert stored["partition"] == VIEW_PARTITION
    assert fates_of(state) == {"s2": "expired"}
    assert [a.action for a in effects.audits] == ["view.expire"]


def test_a_view_read_back_as_written_is_not_validated_again_and_any_other_value_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stage keeps the models of the views it wrote (issue 15): reading one back
    unchanged skips validation, but a stored value that differs (another worker's, or a
    batch that was never delivered) is read as stored, never as kept."""
    stage = ViewStage(CTX)
    first, second, third = (factories.event() for _ in range(3))
    _, state = run(stage, [view_record([event_item(first, "s1")])])
    views = written(state, "views")
    validated: list[object] = []
    real = PersonView.model_validate
    monkeypatch.setattr(
        PersonView, "model_validate", lambda value: validated.append(value) or real(value)
    )
    _, state = run(stage, [view_record([event_item(second, "s2")], 1)], views=dict(views))
    assert validated == []  # read back as this stage wrote it
    after_two = written(state, "views")
    ids = {e["event_id"] for e in after_two[PERSON.encode()]["entries"]}
    assert ids == {first.event_id, second.event_id}
    # The table still holds the first write (as if the second batch was not delivered):
    # it is validated, and the third event folds into it, not into the kept two.
    _, state = run(stage, [view_record([event_item(third, "s3")], 2)], views=dict(views))
    assert len(validated) == 1
    entries = written(state, "views")[PERSON.encode()]["entries"]
    assert {e["event_id"] for e in entries} == {first.event_id, third.event_id}


def test_a_sweep_expires_entries_without_a_new_event() -> None:
    event = factories.event(occurred_at=NOW - timedelta(days=300))
    _, state = run(ViewStage(CTX), [view_record([event_item(event, "s1")])])
    views = written(state, "views")
    later = Context(**{**CTX.__dict__, "consent_retention": timedelta(days=200)})
    _, state = run(ViewStage(later), [view_record([batch.Item(Op.SWEEP, PERSON)])], views=views)
    assert written(state, "views") == {PERSON.encode(): None}
    assert fates_of(state) == {"s1": "expired"}


def test_copies_past_the_source_bound_get_their_duplicate_fate_in_the_fates_table() -> None:
    event = factories.event()
    items = [event_item(event, f"s{n}") for n in range(MAX_SOURCES + 2)]
    _, state = run(ViewStage(CTX), [view_record(items)])
    (entry,) = written(state, "views")[PERSON.encode()]["entries"]
    assert len(entry["sources"]) == MAX_SOURCES
    assert fates_of(state) == {f"s{MAX_SOURCES}": "duplicate", f"s{MAX_SOURCES + 1}": "duplicate"}


def test_a_full_view_drops_its_oldest_entries_with_a_fate() -> None:
    events = [factories.event(occurred_at=NOW - timedelta(minutes=n)) for n in range(1003)]
    items = [event_item(e, f"s{n}") for n, e in enumerate(events)]
    effects, state = run(ViewStage(CTX), [view_record(items)])
    assert len(written(state, "views")[PERSON.encode()]["entries"]) == 1000
    assert fates_of(state) == {"s1002": "dropped", "s1001": "dropped", "s1000": "dropped"}
    assert {a.action for a in effects.audits} == {"view.drop.full"}


def test_erase_removes_the_basis_with_fates_and_merge_moves_entries() -> None:
    kept, gone = factories.event(consent_id="c-2"), factories.event(consent_id="c-1")
    _, state = run(ViewStage(CTX), [view_record([event_item(kept, "s1"), event_item(gone, "s2")])])
    views = written(state, "views")
    erase = batch.Item(Op.ERASE, PERSON, basis="consent:c-1")
    effects, state = run(ViewStage(CTX), [view_record([erase])], views=views)
    assert fates_of(state) == {"s2": "erased"}
    assert [a.action for a in effects.audits] == ["person.erase"]
    views = written(state, "views")
    merge = batch.Item(Op.MERGE, PERSON, into="p-other")
    effects, state = run(ViewStage(CTX), [view_record([merge])], views=views)
    assert written(state, "views") == {PERSON.encode(): None}
    (transfer,) = [o for o in effects.outputs if o.topic == CTX.internal.transfer]
    assert transfer.topic == CTX.internal.transfer and transfer.key == b"p-other"
    moved = record(CTX.internal.transfer, transfer.value, 0, transfer.partition, key=b"p-other")
    _, state = run(ViewStage(CTX), [moved])
    assert [e["event_id"] for e in written(state, "views")[b"p-other"]["entries"]] == [
        kept.event_id
    ]


def test_an_event_whose_consent_was_withdrawn_on_the_way_is_erased_on_arrival() -> None:
    """Admitted just before a withdrawal, it reaches the view after the erasure: it must
    not stay there."""
    late = factories.event(consent_id="c-1")
    withdrawn = {"c-1": {"withdrawn": True, "partner_id": "council-housing"}}
    effects, state = run(
        ViewStage(CTX), [view_record([event_item(late, "s1")])], consents=withdrawn
    )
    assert written(state, "views") == {}
    assert fates_of(state) == {"s1": "erased"}
    assert [a.action for a in effects.audits] == ["view.drop.withdrawn"]


def test_a_view_item_that_cannot_be_read_is_dead_lettered_with_its_partners_fate() -> None:
    bad = batch.Item(Op.EVENT, PERSON, source=f"{HOUSING}:0:4", raw=b"\x00\x00\x00\x00\x01xx")
    good = factories.event()
    effects, state = run(ViewStage(CTX), [view_record([bad, event_item(good, "s1")])])
    assert fates_of(state) == {f"{HOUSING}:0:4": "dead_lettered"}
    assert effects.dead_letters[0].original == bad.raw
    assert len(written(state, "views")[PERSON.encode()]["entries"]) == 1


def test_fates_land_before_the_rows_that_stop_holding_a_record() -> None:
    """A crash between the two writes must leave the fate, never a record with no place."""
    for stage in (ReleaseStage, IdentityStage, ViewStage):
        assert stage.writes[0] == ("fates",), stage.name
        assert {name for group in stage.writes for name in group} <= set(stage.tables)


def test_a_split_keeps_the_entries_of_the_persons_own_tokens_and_transfers_the_rest() -> None:
    mine = factories.event(tokens=[factories.NHS_TOKEN])
    theirs = factories.event(tokens=[factories.COUNCIL_TOKEN])
    _, state = run(
        ViewStage(CTX), [view_record([event_item(mine, "s1"), event_item(theirs, "s2")])]
    )
    parts = {PERSON: [factories.NHS_TOKEN], "p-other": [factories.COUNCIL_TOKEN]}
    split_item = batch.Item(Op.SPLIT, PERSON, parts=parts)
    effects, state = run(ViewStage(CTX), [view_record([split_item])], views=written(state, "views"))
    kept = written(state, "views")[PERSON.encode()]["entries"]
    assert [e["event_id"] for e in kept] == [mine.event_id]
    (transfer,) = [o for o in effects.outputs if o.topic == CTX.internal.transfer]
    assert transfer.key == b"p-other" and theirs.event_id.encode() in transfer.value
    assert fates_of(state) == {}  # nothing left the books: the entries moved


def test_a_record_that_fails_part_way_releases_nothing_and_keeps_its_holds() -> None:
    """Events released before the failure are undone with it: none may be both released
    and still held (the books would count it twice)."""
    good = factories.event(consent_id="c-1")
    held = {
        "c-1": [
            {"raw": base64.b64encode(framed(good)).decode(), "source": "s1"},
            {"raw": base64.b64encode(b"\x00broken").decode(), "source": "s2"},
        ]
    }
    effects, state = run(ReleaseStage(CTX, Consents()), [consent_record()], held=held)
    assert items_on(effects, CTX.internal.identity) == []
    assert written(state, "held") == {} and written(state, "consents") == {}
    assert len(effects.dead_letters) == 1
