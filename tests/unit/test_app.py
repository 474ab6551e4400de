"""The hub's Faust wiring, built without a broker: what the settings ask of the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore

from hub.app import Hub
from hub.config import Settings


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
