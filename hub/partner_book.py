"""A worker follows the partner registry (``hub.partner_registry``) for as long as it runs,
so a partner added with ``placehub partners add`` joins it within seconds, and one removed
loses its ingest token (``hub.partner_join``).

Faust subscribes again after ``Settings.resubscribe_s`` (Faust's default, 45 s, guards
against agents restarting one by one; the hub's never do).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord

from hub.app import Hub
from hub.errors import InputError
from hub.partner_join import join, register_subjects, resubscribe
from hub.partner_registry import decode
from hub.topic_book import TopicBook

__all__ = ["PartnerBook", "install_partner_book"]

log = logging.getLogger(__name__)


class PartnerBook(TopicBook):
    """Applies each registration on ``hub.partners`` to the worker as it comes."""

    name = "partner registry"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub, (hub.topics.partner_registry,))

    async def note(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.value is None:
            return
        try:
            registration = decode(message.value)
        except InputError as exc:
            log.warning("%s: %s; skipped", self.name, exc)
            return
        hub, partner_id = self.hub, registration.partner.id
        if join(hub, registration):
            await asyncio.to_thread(register_subjects, hub.serde, hub.topics, partner_id)
            resubscribe(hub)
            log.info("partner %s joined; its topics are read after the next rebalance", partner_id)


def install_partner_book(hub: Hub) -> None:
    """Follow the registry from the worker's start to its stop."""
    book = PartnerBook.of(hub)

    async def follow_partner_registry() -> None:
        await book.caught_up()  # starts the reader, which then runs for good

    hub.app.task(follow_partner_registry)
    book.close_with_web_server()
