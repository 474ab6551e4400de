"""Reading hub.events as a consuming system should: every admitted event once.

The hub writes hub.events at least once: a worker that crashes re-processes what it had
not committed yet (up to a commit interval of work, ``PLACEHUB_COMMIT_INTERVAL_S``), so
events can appear again, as the same event id with the same value, seconds after the
first copy. (Kafka
transactions would hide the copies from a ``read_committed`` reader; the README's notes
say why the hub does not use them beside Faust.) Each event carries its ``event_id``, so
the contract is: **consumers de-duplicate by event id**. ``EventReader`` does it with a
window of the most recent ids: a copy arrives within a commit interval plus a restart of
its original, and 100,000 ids cover that at over ten times one worker's rate
(about 3,000 events/s). Event ids are unique per partner, so the window keys on both.

When a person is erased (their consent withdrawn), the hub writes a **tombstone** keyed by
the person (a record with no value, header ``placehub-op: erase``): a consuming system
must then delete what it holds of that person. ``EventReader`` calls ``on_erasure`` with
the person id.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from kafka import KafkaConsumer

from hub.config import Settings
from hub.kafka_clients import kafka_python_options
from hub.models import PartnerEvent
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics

__all__ = ["EventReader", "PersonEvent", "RecentIds"]

DEFAULT_WINDOW = 100_000  # event ids remembered (about 15 MB)


@dataclass(frozen=True)
class PersonEvent:
    """One event from hub.events and the person the hub placed it with."""

    person_id: str
    event: PartnerEvent


class RecentIds:
    """The last ``window`` ids seen: says whether an id is new, and counts the repeats."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 event id, not {window}")
        self.window = window
        self.repeats = 0
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time ``event_id`` is seen within the window."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.repeats += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.window:
            self._seen.popitem(last=False)
        return True


class EventReader:
    """A consumer of hub.events that yields each event id once (module docstring).

    Offsets are committed by :meth:`commit`, so a reader that processes, then commits,
    never skips an event; after a restart the window is empty, and copies of events read
    before the last commit are not seen again because the offsets passed them.
    """

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        window: int = DEFAULT_WINDOW,
        on_erasure: Callable[[str], None] | None = None,
        **consumer: object,
    ) -> None:
        self.seen = RecentIds(window)  # seen.repeats: copies dropped since the start
        self.on_erasure = on_erasure  # called with a person id: delete what you hold of them
        self.serde = Serde(SchemaRegistry(settings))
        self._consumer = KafkaConsumer(
            Topics(settings.topic_prefix).events,
            **kafka_python_options(settings),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **consumer,
        )

    def poll(self, timeout_ms: int = 1000) -> list[PersonEvent]:
        """The events that arrived within ``timeout_ms``, each event id at most once."""
        fresh = []
        for records in self._consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                person_id = (record.key or b"").decode()
                if record.value is None:  # the person was erased
                    if self.on_erasure is not None:
                        self.on_erasure(person_id)
                    continue
                event = self.serde.decode(record.value, PartnerEvent)
                if self.seen.first_time(f"{event.partner_id}/{event.event_id}"):
                    fresh.append(PersonEvent(person_id, event))
        return fresh

    def __iter__(self) -> Iterator[PersonEvent]:
        """Events for ever (stop by breaking out or closing the reader)."""
        while True:
            yield from self.poll()

    def commit(self) -> None:
        """Mark everything polled so far as processed (call after processing it)."""
        self._consumer.commit()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
