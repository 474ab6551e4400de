"""A partner cannot act on another's behalf, on the real broker: consents owned, withdrawals
erase what the hub stored, an event with someone else's identifier is held, links and
records retracted only by their own partner, event ids unique per partner."""

from __future__ import annotations

import uuid

from connectors import Publisher
from hub.config import Settings
from hub.models import DeadLetter
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.stages.identity import person_id_for
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import caught_up, wait_for_records
from tests.integration.test_stream_core import (
    HEALTH,
    HOUSING,
    NHS,
    REF,
    UPN,
    consent_draft,
    draft,
    publish_link,
    tok,
    view,
    wait_until,
)

OTHER_NHS = "401 023 2137"
E1, E2 = str(uuid.uuid4()), str(uuid.uuid4())


def dead_letter_reasons(settings: Settings, count: int) -> list[str]:
    """The reasons of the first ``count`` dead letters (waited for), sorted."""
    records = wait_for_records(settings, Topics(settings.topic_prefix).dlq, count)
    serde = Serde(SchemaRegistry(settings))
    return sorted(serde.decode(r[1], DeadLetter).reason for r in records)


def test_consents_are_owned_and_a_withdrawal_erases_what_the_hub_stored(
    make_worker: WorkerFactory,
) -> None:
    """City health cannot withdraw housing's consent; housing's withdrawal naming other
    identifiers still erases the person the hub stored; the id cannot be given again."""
    worker = make_worker()
    s = worker.settings
    person = person_id_for(tok(s, "nhs", NHS))
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS}))
        housing.publish(draft({"nhs": NHS}, HOUSING))
    wait_until(lambda: view(worker, person) is not None)

    with Publisher("city-health", "emis", s) as health:  # a takeover of housing's consent
        health.publish_consent(consent_draft("c-1", {"nhs": NHS}, withdrawn=True))
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish(draft({"nhs": NHS}, HOUSING, minutes=1))
    wait_until(lambda: (v := view(worker, person)) is not None and v["event_count"] == 2)

    with Publisher("council-housing", "northgate", s) as housing:
        # Names another person's NHS number: the stored subject is what is erased.
        housing.publish_consent(consent_draft("c-1", {"nhs": OTHER_NHS}, withdrawn=True))
        wait_until(lambda: view(worker, person) is None)
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS}))  # given again
    assert dead_letter_reasons(s, 2) == [
        "consent_id: a withdrawn consent cannot be given again; record a new consent with a new id",
        "consent_id: belongs to the partner that first published it",
    ]


def test_identifiers_links_and_event_ids_stay_with_the_partner_that_sent_them(
    make_worker: WorkerFactory,
) -> None:
    """An event carrying an identifier its consent was not given with is held; the same
    event id from two partners is two events; another partner's retraction of the pair
    housing's record joined changes nothing, housing's own retraction splits the person."""
    worker = make_worker()
    s = worker.settings
    topics = Topics(s.topic_prefix)
    nhs, council = person_id_for(tok(s, "nhs", NHS)), person_id_for(tok(s, "council", REF))
    with Publisher("council-housing", "northgate", s) as housing:
        housing.publish_consent(consent_draft("c-1", {"nhs": NHS, "council": REF}))
        housing.publish_consent(consent_draft("c-2", {"upn": UPN}))
        # Both identifiers on one record: housing's record evidence joins them.
        housing.publish(draft({"nhs": NHS, "council": REF}, HOUSING, event_id=E1))
        housing.publish(draft({"council": REF}, HOUSING, event_id=E2, minutes=1))
        # c-2 is the UPN's person's: an event also carrying the NHS number is held.
        housing.publish(draft({"upn": UPN, "nhs": NHS}, HOUSING, consent_id="c-2"))
    with Publisher("city-health", "emis", s) as health:
        health.publish(draft({"nhs": NHS}, HEALTH, event_id=E1))  # housing's event id
    wait_until(lambda: (v := view(worker, nhs)) is not None and v["event_count"] == 3)
    held = wait_for_records(s, topics.quarantine, 1)
    assert held[0][2]["placehub-reason"] == (
        b"consent c-2: subject.tokens holds an identifier the consent's subject was not "
        b"given with, nor linked to by a partner"
    )

    publish_link(s, "city-health", "fix", ("nhs", NHS), ("council", REF), retract=True)
    # Done when the links stage, identity and the views have committed all they read.
    for hop in (topics.partner_links("city-health"), "identity", "view", "view-transfer"):
        topic = hop if "." in hop else f"{s.app_id}-{hop}"
        wait_until(lambda t=topic: caught_up(s, t), describe=lambda t=topic: t)
    assert view(worker, council) is None
    assert (v := view(worker, nhs)) is not None and v["event_count"] == 3

    publish_link(s, "council-housing", "fix", ("nhs", NHS), ("council", REF), retract=True)
    wait_until(lambda: view(worker, council) is not None)
    split = view(worker, council)
    assert split is not None and [e["event_id"] for e in split["timeline"]] == [E2]
    assert (v := view(worker, nhs)) is not None and v["event_count"] == 2
