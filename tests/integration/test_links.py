"""Links on the real broker: each partner's own topic, and a lawful basis.

A link under a consent published before the consent is held by the release stage and
then extends what the consent covers; a link naming another partner than its topic's,
or one under an agreement its partner did not sign, is dead-lettered with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors import ConsentDraft, Publisher
from hub.models import (
    BasisKind,
    DeadLetter,
    IdentityLink,
    LawfulBasis,
    LinkMethod,
    LinkStatus,
)
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import produce_raw, read_topic, wait_for_records
from tests.integration.test_stream_core import (
    HOUSING,
    NHS,
    REF,
    SCHOOL,
    UPN,
    draft,
    publish_link,
    stored_views,
    tok,
    view,
    wait_until,
)


def test_a_link_before_its_consent_is_held_then_covers_the_schools_identifier(
    make_worker: WorkerFactory,
) -> None:
    """Housing links the UPN to its council ref under the person's consent before sending
    the consent; the school's event carrying only the UPN is then admitted under that
    consent and joins the person (the gate compares people, not literal identifiers)."""
    worker = make_worker(maintenance_interval_s=2)
    s = worker.settings
    publish_link(s, "council-housing", "l-1", ("council", REF), ("upn", UPN), consent_id="c-1")
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(
            ConsentDraft(
                consent_id="c-1",
                identifiers={"nhs": NHS, "council": REF},
                purposes=["early-help"],
                sharing_partners=["council-housing", "northfield-school"],
            )
        )
        housing.publish(draft({"nhs": NHS, "council": REF}, HOUSING))
    with Publisher("northfield-school", "sims", s) as school:
        school.publish(draft({"upn": UPN}, SCHOOL))

    person = person_id_for(tok(s, "nhs", NHS))

    def describe() -> str:
        serde = Serde(SchemaRegistry(s))
        dlq = [
            serde.decode(r[1], DeadLetter).reason for r in read_topic(s, Topics(s.topic_prefix).dlq)
        ]
        return f"views {stored_views(worker)}; dead letters {dlq}"

    wait_until(
        lambda: (v := view(worker, person)) is not None and v["event_count"] == 2,
        describe=describe,
    )
    joined = view(worker, person)
    assert joined is not None
    assert set(joined["partners"]) == {"council-housing", "northfield-school"}


def test_links_on_another_partners_topic_or_without_a_signed_basis_are_dead_lettered(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    s = worker.settings
    topics = Topics(s.topic_prefix)
    serde = Serde(SchemaRegistry(s))
    forged = IdentityLink(
        link_id="l-forged",
        partner_id="council-housing",  # written to city-health's topic
        tokens=[tok(s, "nhs", NHS), tok(s, "council", REF)],
        method=LinkMethod.VERIFIED_MATCH,
        status=LinkStatus.ASSERTED,
        recorded_at=datetime.now(UTC),
        basis=LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id="dsa-x", purpose="early-help"),
    )
    health = topics.partner_links("city-health")
    produce_raw(s, health, serde.encode(forged, f"{health}-value"))
    unsigned = forged.model_copy(update={"link_id": "l-unsigned", "partner_id": "city-health"})
    produce_raw(s, health, serde.encode(unsigned, f"{health}-value"))

    records = wait_for_records(s, topics.dlq, 2)
    letters = sorted((serde.decode(r[1], DeadLetter) for r in records), key=lambda d: d.reason)
    assert [(d.source_topic, d.reason) for d in letters] == [
        (health, "data-sharing agreement dsa-x is not in this deployment"),
        (health, "link says partner council-housing but arrived on the topic of city-health"),
    ]
    assert view(worker, person_id_for(tok(s, "nhs", NHS))) is None
