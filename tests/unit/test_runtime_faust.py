"""Guards for the Faust and aiokafka internals ``hub.runtime.run`` relies on: each fails
loudly if an upgrade changes what the runtime assumes (its module docstring lists them)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.exceptions import ConsumerNotStarted
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from hub.app import Hub
from hub.config import Settings
from hub.runtime.run import _writing_to
from hub.web import _assigned


def test_the_current_event_is_a_context_variable_holding_a_weak_reference() -> None:
    assert isinstance(_current_event, contextvars.ContextVar)
    with _writing_to(3):
        event = faust.current_event()
        assert event is not None and event.message.partition == 3
    assert faust.current_event() is None


def test_the_rocksdb_store_picks_its_database_from_the_current_events_partition() -> None:
    source = inspect.getsource(RocksDBStore._set)
    assert "current_event()" in source and "event.message.partition" in source
    assert callable(RocksDBStore.set_persisted_offset)
    assert callable(MemoryStore.set_persisted_offset)


def test_the_drivers_producer_is_aiokafkas_and_send_returns_a_future(tmp_path: Path) -> None:
    hub = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path))

    async def producer() -> Any:
        driver = hub.app.producer
        assert callable(driver._ensure_producer)  # type: ignore[attr-defined]
        return driver._new_producer()  # type: ignore[attr-defined]  # what on_start keeps

    assert isinstance(asyncio.run(producer()), AIOKafkaProducer)
    assert "self._producer = self._new_producer()" in inspect.getsource(
        type(hub.app.producer).on_start
    )
    assert "return fut" in inspect.getsource(AIOKafkaProducer.send)


def test_tables_keep_a_store_and_a_changelog_that_serialise_like_faust(tmp_path: Path) -> None:
    hub = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path))
    table = hub.views
    topic = table.changelog_topic
    raw_key, _ = topic.prepare_key(b"p-1", table.key_serializer)
    raw_value, _ = topic.prepare_value({"a": 1}, table.value_serializer)
    assert (raw_key, raw_value) == (b"p-1", b'{"a":1}')
    assert topic.get_topic_name() == f"{hub.settings.app_id}-views-changelog"
    assert isinstance(table.data, MemoryStore)


def test_take_events_acks_a_batch_in_a_finally_block() -> None:
    """Faust acks a batch when the agent asks for the next one, after ``run`` wrote its
    marks (so Faust's acks past the marks mean a skip), and a cancelled batch in a
    ``finally`` block (which the commits, following the marks, do not take as done)."""
    source = inspect.getsource(faust.Stream.take_events)
    finally_block = source[source.index("finally:") :]
    assert "await self.ack(event)" in finally_block.split("events.clear()")[0]


def test_the_consumer_keeps_what_the_watchdog_reads(tmp_path: Path) -> None:
    """``hub.runtime.watchdog`` reads the consumer's committed offsets, asks
    ``Consumer.highwaters`` and ``Consumer.earliest_offsets``, asks ``Consumer.position``
    (aiokafka's, on the consumer's thread) what was handed to Faust, and seeks with
    ``Consumer.seek_wait``, which runs aiokafka's seek on the consumer's own thread
    (``call_thread``; Faust's ``seek`` does not) and resets Faust's read position."""
    consumer = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)).app.consumer
    assert hasattr(consumer, "_committed_offset")
    thread = driver.AIOKafkaConsumerThread
    assert "self.call_thread(self._seek_wait" in inspect.getsource(thread.seek_wait)
    assert "self.consumer._read_offset[tp] = offset" in inspect.getsource(thread._seek_wait)
    assert "self._thread.seek_wait(partitions)" in inspect.getsource(type(consumer).seek_wait)
    assert inspect.iscoroutinefunction(consumer.highwaters)
    assert inspect.iscoroutinefunction(consumer.earliest_offsets)
    assert "self._thread.position(tp)" in inspect.getsource(type(consumer).position)
    assert "self._ensure_consumer().position" in inspect.getsource(thread.position)


def test_a_paused_partition_is_not_asked_for(tmp_path: Path) -> None:
    """``hub.runtime.flow`` pauses the gate's partitions with ``Consumer.pause_partitions``:
    Faust then leaves them out of its active partitions, and asks aiokafka's fetcher only for
    those (what was fetched of a paused one stays there, its position unmoved)."""
    consumer = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)).app.consumer
    gate, consent = TP("partner.a.events", 0), TP("consent.records", 0)
    consumer._set_active_tps({gate, consent})
    consumer.pause_partitions({gate})
    assert consumer._get_active_partitions() == {consent}
    consumer.resume_partitions({gate})
    assert consumer._get_active_partitions() == {gate, consent}
    fetch = inspect.getsource(driver.AIOKafkaConsumerThread._fetch_records)
    assert "fetcher.fetched_records(\n                    active_partitions" in fetch


def test_faust_asks_new_offset_for_every_commit() -> None:
    """``hub.runtime.transport`` decides commits in ``_new_offset``: Faust must ask it, and
    only it, for the offset it commits."""
    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer._filter_committable_offsets)
    assert "self._new_offset(tp)" in source
    assert "self._filter_committable_offsets(tps)" in inspect.getsource(Consumer._commit_tps)


def test_health_reads_a_consumer_not_yet_started_as_no_partitions() -> None:
    # Health is asked from the web server's first moment; Faust's consumer thread may not
    # have started yet, and its assignment() then raises rather than answering.
    app = faust.App("placehub-health-guard", broker="kafka://127.0.0.1:1")
    with pytest.raises(ConsumerNotStarted):
        app.consumer.assignment()
    assert _assigned(cast(Hub, SimpleNamespace(app=app))) is False
