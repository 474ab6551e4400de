"""A worker's copy of ``hub.patterns``: every published cell, already disclosure-controlled.

The topic is compacted and small (a few hundred cells a window), so every worker keeps all
of it in memory (``hub.topic_book``: one reader of its own from the beginning, for good).
A read first lets it reach the ends the partitions had (``current``), so an answer holds
every cell published before it was asked for. The
patterns stage published these values; the book never sees a true count.
"""

from __future__ import annotations

from aiokafka import ConsumerRecord

from hub.app import Hub
from hub.models import PatternCell
from hub.topic_book import CATCH_UP_S, TopicBook

__all__ = ["CATCH_UP_S", "PatternBook", "pattern_book"]


class PatternBook(TopicBook):
    """Every cell on ``hub.patterns``, by its key (module docstring)."""

    name = "pattern book"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub, (hub.topics.patterns,))
        self.cells: dict[str, PatternCell] = {}

    async def current(self) -> dict[str, PatternCell]:
        """The cells, once the book has read to the ends the topic had at the call
        (``BrokerError`` if not within ``CATCH_UP_S``)."""
        await self.caught_up()
        return self.cells

    async def note(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.key is None:
            return
        key = message.key.decode()
        cell = await self.decoded(message, PatternCell)
        if cell is None:  # a tombstone (or a record that is not a cell: logged)
            self.cells.pop(key, None)
        else:
            self.cells[key] = cell


def pattern_book(hub: Hub) -> PatternBook:
    """The hub's ``PatternBook`` (made on first use; it reads once first asked to)."""
    return PatternBook.of(hub)
