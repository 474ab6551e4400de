"""Roll records: what makes an erasure reach a quiet compacted topic.

Kafka never compacts a partition's active segment, and it rolls that segment (on
``segment.ms``, or ``max.compaction.lag.ms`` for a compacted topic) only when a record is
appended. A withdrawal's tombstones land in the active segment, so on a partition nothing
else is written to afterwards, the cleaner never sees them and the person's older records
stay on disk for good. Each maintenance tick therefore appends one tombstone under a key no
table, consent or alert uses (``ROLL``) to every partition of the consent and alert topics
and of every table's changelog: a segment older than its roll time is rolled, the cleaner
then applies the erasure, and the roll tombstones themselves compact away (``delete.retention.ms``).

A changelog's key is written with its table's key serialiser, so Faust's table recovery
reads a roll tombstone as the deletion of a key that was never there. The release stage
ignores tombstones on the consent topic (they are the hub's own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.stages.effects import Output

__all__ = ["ROLL", "roll_records"]

ROLL = "placehub:roll"


def roll_records(tables: Iterable[Any], compacted: Iterable[str], partitions: int) -> list[Output]:
    """One roll tombstone per partition of each ``compacted`` topic (the consents, the
    alerts) and of every table's changelog (Faust tables; one with its own partition count
    keeps it)."""
    outputs = [
        Output(topic, p, ROLL.encode(), None) for topic in compacted for p in range(partitions)
    ]
    for table in tables:
        topic = table.changelog_topic
        key: Any = ROLL.encode() if table.key_type is bytes else ROLL
        raw_key, _ = topic.prepare_key(key, table.key_serializer)
        name = topic.get_topic_name()
        for partition in range(table.partitions or partitions):
            outputs.append(Output(name, partition, raw_key, None))
    return outputs
