"""A partner registered while the hub runs joins a worker: its topics are read, its ingest
user is answered, its books and metrics are shown (``hub.partner_registry`` says where
registrations come from).

At start (``Hub.prepare``) every registration is read before Faust subscribes, so the
worker's first subscription already has the registered partners' topics. After that the
worker follows the registry (``hub.partner_book``): a new partner's topics are added to the
gate's and the links stage's streams, and Faust subscribes again (``resubscribe``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from faust.transport.conductor import Conductor

from hub.models import IdentityLink, PartnerEvent
from hub.partner_registry import Registration, read_registrations
from hub.serde import Serde
from hub.stages.gate import GateStage
from hub.stages.links import LinksStage
from hub.topics import Topics

if TYPE_CHECKING:
    from hub.app import Hub

__all__ = ["join", "join_registered", "register_subjects", "resubscribe"]

log = logging.getLogger(__name__)


def join(hub: Hub, registration: Registration) -> bool:
    """Apply ``registration`` to ``hub``; True if the worker has new topics to read.

    A removed partner loses its ingest user but stays listed and read, so what it sent
    before still reaches a fate and its books balance."""
    partner, user = registration.partner, registration.ingest_user
    if registration.removed:
        hub.users.remove(user.id)
        return False
    if not hub.users.add(user):
        log.warning("partner %s: its ingest token is another user's; not added", partner.id)
    if partner.id in hub.partner_ids:
        return False
    hub.partners.append(partner)
    hub.partner_ids.add(partner.id)
    events, links = hub.topics.partner(partner.id), hub.topics.partner_links(partner.id)
    for stage, topic in ((GateStage.name, events), (LinksStage.name, links)):
        _read_also(hub, stage, topic)
    hub.metrics.declare_partners([partner.id])
    return True


def _read_also(hub: Hub, stage: str, topic: str) -> None:
    """Add ``topic`` to what ``stage`` reads: its stream, and the copies of it that Faust's
    agent made and subscribed with (``Agent`` clones its channel for its actors)."""
    stream = hub.streams[stage]
    before = tuple(stream.topics)
    for channel in (stream, *hub.app.topics):
        if tuple(channel.topics) == before:
            channel.topics = [*before, topic]
    hub.readers[topic] = stage


def join_registered(hub: Hub) -> None:
    """Every registration so far (blocking: before Faust starts)."""
    for registration in read_registrations(hub.settings).values():
        join(hub, registration)


def register_subjects(serde: Serde, topics: Topics, partner_id: str) -> None:
    """Register what is written on a partner's topics under their subjects: the SDK
    registers nothing, and HTTP ingest must not wait on the registry (blocking)."""
    serde.schema_for(PartnerEvent.avro_schema, f"{topics.partner(partner_id)}-value")
    serde.schema_for(IdentityLink.avro_schema, f"{topics.partner_links(partner_id)}-value")


def resubscribe(hub: Hub) -> None:
    """Have Faust subscribe again to every stream's topics, after its wait (Faust's own path
    when an agent adds a topic, ``Conductor.add``; the group then rebalances once)."""
    conductor = cast(Conductor, hub.app.topics)
    # Faust waits 45 s first, in case more agents are restarting; the hub's never do.
    conductor._resubscribe_sleep_lock_seconds = hub.settings.resubscribe_s
    conductor._flag_changes()  # private in faust-streaming 0.11 (pinned)
