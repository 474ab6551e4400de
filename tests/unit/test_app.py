"""The hub's Faust wiring, built without a broker: what the settings ask of the app."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore

from hub import rocksdb_store
from hub.app import Hub
from hub.config import Settings
from hub.users import Role


@pytest.mark.parametrize(
    ("store", "backend"), [("memory://", MemoryStore), ("rocksdb://", RocksDBStore)]
)
def test_tables_live_in_the_store_the_settings_name(
    store: str, backend: type, tmp_path: Path
) -> None:
    # Nothing connects until the app starts, so an unreachable broker is fine here.
    settings = Settings(store=store, bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)
    hub = Hub(settings)
    assert hub.app.conf.store.scheme == store.removesuffix("://")
    for table in (hub.views, hub.held, hub.consents, hub.ledger):
        assert isinstance(table.data, backend), table.name


def test_the_workers_consumer_waits_at_most_the_fetch_wait_setting(tmp_path: Path) -> None:
    """Faust's driver hard-codes 1.5 s; records then sat that long between two stages."""
    settings = Settings(fetch_max_wait_ms=25, bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)
    hub = Hub(settings)

    async def consumer_of_worker() -> Any:
        thread = hub.app.consumer._thread  # type: ignore[attr-defined]
        return thread._create_worker_consumer(hub.app.transport)

    consumer = asyncio.run(consumer_of_worker())
    assert consumer._fetch_max_wait_ms == 25
    assert hub.app.conf.producer_max_batch_size > 16_384


def test_every_rocksdb_database_has_bounded_write_buffers(tmp_path: Path) -> None:
    """Faust's defaults (64 MiB write buffers, three, per database, one per table
    partition) let a worker's memory grow with the place."""
    settings = Settings(store="rocksdb://", bootstrap_servers="127.0.0.1:1", state_dir=tmp_path)
    hub = Hub(settings)
    for table in hub.app.tables.values():
        assert isinstance(table.data, rocksdb_store.Store), table.name
        options = table.data.rocksdb_options
        assert options.write_buffer_size == 8 * 2**20, table.name
        assert options.max_write_buffer_number == 2, table.name


def test_every_rocksdb_database_of_a_worker_writes_and_reads_within_one_budget(
    tmp_path: Path,
) -> None:
    """One block cache and one write-buffer manager for all of a worker's databases (issue
    15, item 5): what any table writes is counted against the same budget."""
    settings = Settings(
        store="rocksdb://",
        rocksdb_memory_mb=64,
        bootstrap_servers="127.0.0.1:1",
        state_dir=tmp_path,
    )
    hub = Hub(settings)
    cache, buffers = rocksdb_store.shared_budget(64 * 2**20)
    assert buffers.get_buffer_size() == 32 * 2**20
    used, dbs = [buffers.get_usage()], []
    for table in (hub.views, hub.fates):
        dbs.append(table.data.rocksdb_options.open(tmp_path / f"{table.name}-0.db"))
        for n in range(2_000):
            dbs[-1][f"{table.name}-{n}".encode()] = b"x" * 200
        used.append(buffers.get_usage())
    charged = cache.get_usage()
    for db in dbs:
        db.close()
    assert used[0] < used[1] < used[2]  # both databases' memtables count in the one budget
    assert charged >= used[2]  # and are charged to the one cache


def test_tables_serialise_through_orjson_and_read_back_the_same(tmp_path: Path) -> None:
    """Faust's json codec takes orjson when it is installed (a pinned dependency, issue 15):
    every table write and changelog read goes through it. What it writes reads back as the
    standard library's codec would give it, a UTC time included (written with ``Z``)."""
    from faust.utils import json as faust_json

    assert faust_json.orjson is not None, "orjson missing: Faust falls back to the slow codec"
    hub = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path))
    table, when = hub.views, datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    value = {"person_id": "p-1", "n": 2, "kind": Role.STEWARD, "at": when, "none": None}
    raw, _ = table.changelog_topic.prepare_value(value, table.value_serializer)
    read = json.loads(raw)
    assert read == {**value, "kind": "steward", "at": read["at"]}
    assert datetime.fromisoformat(read["at"]) == when
