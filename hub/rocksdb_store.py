"""RocksDB tables within one memory budget per worker (``PLACEHUB_STORE=rocksdb://``).

Faust opens one RocksDB database per table partition (ten tables of ``partitions``
partitions and five of one: 45 with the default four) and gives each its own block cache
and write buffers, so a worker's native memory grows with the number of databases, up to
each one's limits, not with what it needs: bounded per database (two 8 MiB write buffers
and a 16 MiB cache), that was up to 1.4 GiB at four partitions and 2.7 GiB at eight, and
loading a place filled the write buffers of every database it wrote to (issue 15, item 5).

Here every database of the process shares one LRU block cache (``rocksdb_memory_mb``, a
setting: 256 MiB), and their memtables are charged to it through one RocksDB
``WriteBufferManager`` (half of it): RocksDB flushes memtables when their total passes that
share, so what RocksDB holds in memory stays near the one figure however many databases and
people there are.

Faust's ``rocksdb`` store is used as it is; only the options it opens each database with
change (``RocksDBOptions.as_options``, with rocksdict, the driver installed). Faust finds
this store by the name ``placehub-rocksdb`` (an entry point in its ``faust.stores`` group,
pyproject.toml); the hub's tables ask for it when the setting says ``rocksdb://``, and it
keeps its databases where Faust's own would be, so existing state is read as it is.
"""

from __future__ import annotations

from typing import Any

from faust.stores import rocksdb

from hub.config import Settings

__all__ = [
    "ROCKSDB_OPTIONS",
    "SharedBudgetOptions",
    "Store",
    "shared_budget",
    "store_url",
    "table_store",
]

# RocksDB's write buffers per database (one per table partition): Faust's defaults are
# 64 MiB, up to three, so a worker's memory grew 4.2 KB a person with the place (2.9 KB
# with these: placehub bench --only scale --scale-people 150000; issue 15's million
# people). Every database's memtables and reads also share one budget (below).
# The memory store ignores them. Faust's store pops keys from the dict it is given: each
# table gets a copy.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 8 * 2**20,
    "max_write_buffer_number": 2,
}

_shared: dict[int, tuple[Any, Any]] = {}  # by size: one budget per worker process


def store_url(table: str) -> str:
    """The store URL of ``table``: its databases are where Faust's ``rocksdb://`` puts them
    (a URL with no path would read as empty, and Faust would take the app's store)."""
    return f"placehub-rocksdb:{table}"


def table_store(store: str, table: str) -> dict[str, Any]:
    """The ``store`` and ``options`` of a hub table named ``table`` when the setting is
    ``store``: rocksdb:// is Faust's RocksDB store within one memory budget per worker."""
    url = store_url(table) if store == "rocksdb://" else None
    return {"store": url, "options": dict(ROCKSDB_OPTIONS)}


def shared_budget(memory_bytes: int) -> tuple[Any, Any]:
    """The process's one block cache of ``memory_bytes`` and its write-buffer manager (made
    on first use; rocksdict is imported only then: the memory store does not need it)."""
    import rocksdict

    if memory_bytes not in _shared:
        cache = rocksdict.Cache(memory_bytes)
        buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memory_bytes // 2, False, cache
        )
        _shared[memory_bytes] = (cache, buffers)
    return _shared[memory_bytes]


class SharedBudgetOptions(rocksdb.RocksDBOptions):
    """Faust's options for one database, with the shared cache and write-buffer manager."""

    def __init__(self, memory_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.memory_bytes = memory_bytes

    def as_options(self) -> Any:
        import rocksdict

        options = super().as_options()
        cache, buffers = shared_budget(self.memory_bytes)
        table = rocksdict.BlockBasedOptions()  # as Faust builds it, with the shared cache
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(buffers)
        return options


class Store(rocksdb.Store):
    """Faust's RocksDB store, opening its databases with ``SharedBudgetOptions``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.app.hub_settings  # type: ignore[attr-defined]  # HubApp
        self.rocksdb_options = SharedBudgetOptions(
            settings.rocksdb_memory_mb * 2**20, **(self.options or {}), use_rocksdict=True
        )
