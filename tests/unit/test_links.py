"""Links are owned and need a lawful basis: the links stage, the release stage's holds of
links under a consent, and identity undoing a partner's record evidence on its retraction."""

from __future__ import annotations

import dataclasses
from datetime import date

from hub import batch
from hub.agreements import Agreement, AgreementBook
from hub.batch import Op
from hub.models import BasisKind, IdentityLink, LinkStatus
from hub.stages.basis import Consents
from hub.stages.effects import Record
from hub.stages.gate import GateStage
from hub.stages.hops import OP, REASON, SOURCE
from hub.stages.identity import IdentityStage, person_id_for
from hub.stages.links import LinksStage
from hub.stages.quarantine import ReleaseStage
from tests.unit import factories
from tests.unit.test_stages import (
    CTX,
    HOUSING,
    SERDE,
    consent_record,
    framed,
    identity_record,
    items_on,
    record,
    run,
    written,
)

AGREEMENT = Agreement(
    id="dsa-1",
    title="Early help",
    partners=["council-housing"],
    event_types=["housing.*"],
    purposes=["early-help"],
    roles=["practitioner"],
    retention_days=365,
    valid_from=date(2026, 1, 1),
)
LINKS_CTX = dataclasses.replace(CTX, agreements=AgreementBook([AGREEMENT]))
OTHER_NHS = "nhs:" + "b" * 43
UPN = "upn:" + "c" * 43


def link_record(link: IdentityLink, topic_partner: str = "council-housing", n: int = 0) -> Record:
    topic = CTX.topics.partner_links(topic_partner)
    return record(topic, SERDE.encode(link, f"{topic}-value"), n, key=link.link_id.encode())


def test_a_link_must_name_the_partner_whose_topic_it_arrived_on() -> None:
    forged = factories.link("city-health", agreement_id="dsa-1")  # on housing's topic
    effects, _ = run(LinksStage(LINKS_CTX), [link_record(forged)])
    assert items_on(effects, CTX.internal.identity) == []
    assert "arrived on the topic of council-housing" in effects.dead_letters[0].reason


def test_an_asserted_link_needs_a_basis_its_partner_holds() -> None:
    """No basis, an agreement its partner did not sign, or one unknown: dead-lettered
    with the reason; a signed agreement and a retraction without a basis go on."""
    fields = factories.link().model_dump() | {"basis": None}
    unbased = IdentityLink.model_construct(**fields)  # what a foreign client could send
    unsigned = factories.link("city-health", agreement_id="dsa-1")
    unknown = factories.link(agreement_id="dsa-none")
    signed = factories.link(agreement_id="dsa-1", link_id="l-ok")
    retraction = factories.link(status=LinkStatus.RETRACTED, consent_id=None, link_id="l-r")
    records = [
        link_record(unbased, n=0),
        link_record(unsigned, "city-health", n=1),
        link_record(unknown, n=2),
        link_record(signed, n=3),
        link_record(retraction, n=4),
    ]
    effects, _ = run(LinksStage(LINKS_CTX), records)
    reasons = [d.reason for d in effects.dead_letters]
    assert "an asserted link needs a lawful basis" in reasons[0]
    assert reasons[1] == "agreement dsa-1 does not include partner city-health"
    assert reasons[2] == "data-sharing agreement dsa-none is not in this deployment"
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == ["l-ok", "l-r"]


def test_a_link_under_a_consent_goes_to_the_consents_partition_of_the_release_stage() -> None:
    link = factories.link(consent_id="c-7")
    effects, _ = run(LinksStage(LINKS_CTX), [link_record(link, n=5)])
    (out,) = effects.outputs
    assert out.topic == CTX.internal.control and out.key == b"c-7"
    assert out.partition == batch.partition_for(b"c-7", CTX.partitions)
    assert dict(out.headers) == {OP: b"link", SOURCE: f"{link_record(link).topic}:0:5".encode()}


def to_release(link: IdentityLink, offset: int = 0) -> Record:
    source = f"{CTX.topics.partner_links(link.partner_id)}:0:{offset}"
    value = SERDE.encode(link, f"{CTX.topics.partner_links(link.partner_id)}-value")
    assert link.basis is not None and link.basis.kind is BasisKind.CONSENT
    key = (link.basis.consent_id or "").encode()
    return record(
        CTX.internal.control, value, offset, key=key, headers={OP: b"link", SOURCE: source.encode()}
    )


def test_a_link_published_before_its_consent_is_held_then_released() -> None:
    link = factories.link(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    effects, state = run(ReleaseStage(CTX, Consents()), [to_release(link)])
    assert items_on(effects, CTX.internal.identity) == [] and effects.dead_letters == []
    held = written(state, "held")
    assert [i["link_id"] for i in held["c-1"]] == ["l-1"]
    effects, state = run(ReleaseStage(CTX, Consents()), [consent_record()], held=held)
    (released,) = items_on(effects, CTX.internal.identity)
    assert (released.op, released.key, released.basis) == (Op.LINK, "l-1", "c-1")
    assert written(state, "held") == {"c-1": None}
    assert written(state, "fates") == {}  # links are in no partner's books


def test_a_consent_must_share_with_the_linking_partner_and_cover_one_identifier() -> None:
    consents = {"c-1": factories.consent(tokens=[factories.NHS_TOKEN]).model_dump(mode="json")}
    strangers = factories.link(tokens=[OTHER_NHS, UPN], link_id="l-2")  # neither is its subject
    outsider = factories.link("northfield-school", link_id="l-3")  # not a sharing partner
    effects, state = run(
        ReleaseStage(CTX, Consents()),
        [to_release(strangers, 1), to_release(outsider, 2)],
        consents=consents,
    )
    assert items_on(effects, CTX.internal.identity) == [] and written(state, "held") == {}
    first, second = effects.dead_letters
    assert "neither of the link's tokens is one the consent's subject" in first.reason
    assert (first.source_topic, first.source_offset) == (
        CTX.topics.partner_links("council-housing"),
        1,
    )
    assert second.reason == "consent c-1 does not cover partner northfield-school"


def test_a_link_under_a_withdrawn_consent_is_dropped_and_a_retraction_takes_a_hold_with_it() -> (
    None
):
    withdrawn = {"c-1": {"withdrawn": True, "partner_id": "council-housing"}}
    effects, state = run(
        ReleaseStage(CTX, Consents()), [to_release(factories.link())], consents=withdrawn
    )
    assert items_on(effects, CTX.internal.identity) == [] and written(state, "held") == {}
    assert [a.action for a in effects.audits] == ["quarantine.drop.withdrawn"]

    _, state = run(ReleaseStage(CTX, Consents()), [to_release(factories.link())])
    retraction = factories.link(status=LinkStatus.RETRACTED)
    effects, state = run(
        ReleaseStage(CTX, Consents()), [to_release(retraction, 1)], held=written(state, "held")
    )
    assert written(state, "held") == {"c-1": None}
    assert [(i.op, i.basis) for i in items_on(effects, CTX.internal.identity)] == [(Op.LINK, "")]


def test_identity_drops_a_link_whose_consent_was_withdrawn_on_its_way() -> None:
    link = factories.link()
    item = batch.Item(Op.LINK, "l-1", raw=SERDE.encode(link, "links-value"), basis="c-1")
    effects, state = run(
        IdentityStage(CTX), [identity_record([item])], identity_withdrawn={"c-1": "then"}
    )
    assert written(state, "identity-people") == {}
    assert [a.action for a in effects.audits] == ["identity.drop.withdrawn"]


def test_a_partners_retraction_undoes_what_its_own_records_joined() -> None:
    """An event carrying a wrong identifier joins two people; the partner that sent it
    retracts the pair and they split. Another partner's retraction does not undo it."""
    wrong = factories.event(tokens=[factories.NHS_TOKEN, factories.COUNCIL_TOKEN])
    source = f"{HOUSING}:0:1"
    tokens = wrong.subject.tokens
    event = batch.Item(Op.EVENT, wrong.event_id, source=source, tokens=tokens, raw=framed(wrong))
    _, state = run(IdentityStage(CTX), [identity_record([event])])
    tables = {
        "identity_tokens": written(state, "identity-tokens"),
        "identity_people": written(state, "identity-people"),
    }
    person = person_id_for(factories.NHS_TOKEN)
    assert tables["identity_people"][person]["edges"] == {
        "|".join(sorted(tokens)): ["record:council-housing"]
    }

    def retraction(partner: str) -> batch.Item:
        link = factories.link(partner, status=LinkStatus.RETRACTED, consent_id=None, link_id="fix")
        return batch.Item(Op.LINK, "fix", raw=SERDE.encode(link, "links-value"))

    effects, _ = run(IdentityStage(CTX), [identity_record([retraction("city-health")])], **tables)
    assert items_on(effects, CTX.internal.view) == []
    effects, state = run(
        IdentityStage(CTX), [identity_record([retraction("council-housing")])], **tables
    )
    (split,) = items_on(effects, CTX.internal.view)
    assert split.op == Op.SPLIT and split.key == person
    assert written(state, "identity-tokens")[factories.COUNCIL_TOKEN] == person_id_for(
        factories.COUNCIL_TOKEN
    )


def test_a_consent_covers_an_identifier_linked_to_its_subject_on_its_own() -> None:
    """The school's event carries only the UPN; housing's consent was given with the NHS
    number and linked the UPN to it. The consent covers the person, so the event is
    admitted (it was held as 'about a different person': the check compared literal
    identifiers before looking at links); an unlinked UPN is still someone else."""
    consents = {"c-1": factories.consent(tokens=[factories.NHS_TOKEN]).model_dump(mode="json")}
    link = factories.link(tokens=[factories.NHS_TOKEN, UPN])
    item = batch.Item(Op.LINK, "l-1", raw=SERDE.encode(link, "links-value"))
    _, state = run(IdentityStage(CTX), [identity_record([item])])
    linked = written(state, "linked")
    upn_only = factories.event(tokens=[UPN])
    stranger = factories.event(tokens=[OTHER_NHS])
    effects, _ = run(
        GateStage(CTX, Consents()),
        [record(HOUSING, framed(upn_only), 0), record(HOUSING, framed(stranger), 1)],
        consents=consents,
        linked=linked,
    )
    assert [i.key for i in items_on(effects, CTX.internal.identity)] == [upn_only.event_id]
    (held,) = [o for o in effects.outputs if o.topic == CTX.topics.quarantine]
    assert dict(held.headers)[REASON] == b"consent c-1 is about a different person"
