"""Roll records (``hub.runtime.rolls``): one tombstone per partition of the consent topic
and of every changelog, under a key Faust's recovery reads back as a deletion."""

from __future__ import annotations

from pathlib import Path

from hub.app import Hub
from hub.config import Settings
from hub.runtime.rolls import ROLL, roll_records


def test_every_partition_of_every_compacted_topic_gets_one_roll_tombstone(tmp_path: Path) -> None:
    hub = Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path, partitions=4))
    tables = list(hub.app.tables.values())
    rolls = roll_records(tables, [hub.topics.consent, hub.topics.alerts], 4)
    assert all(out.value is None for out in rolls)
    by_topic: dict[str, set[int]] = {}
    for out in rolls:
        by_topic.setdefault(out.topic, set()).add(out.partition)
    assert by_topic[hub.topics.consent] == {0, 1, 2, 3}
    for table in tables:
        partitions = set(range(table.partitions or 4))
        assert by_topic[table.changelog_topic.get_topic_name()] == partitions, table.name
        # The key reads back through the table's own serialiser as the roll key.
        out = next(o for o in rolls if o.topic == table.changelog_topic.get_topic_name())
        key = table.changelog_topic.key_serializer or table.key_serializer
        assert out.key is not None and ROLL.encode() in out.key, (table.name, key)
    assert hub.views.key_type is bytes  # the views table is keyed by bytes: its roll key too
