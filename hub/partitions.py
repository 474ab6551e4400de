"""Where Kafka's default partitioner puts a key, with each key's hash kept.

One piece of arithmetic for the workers' table routing and hops (``hub.batch`` re-exports
it), so a key lands where the Java client, Faust, kafka-python and the connectors'
producer (librdkafka's ``murmur2_random``, tested against this) all put it.
"""

from __future__ import annotations

from functools import lru_cache

from kafka.partitioner.default import murmur2

__all__ = ["partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition (of ``partitions``) Kafka's default partitioner gives ``key``."""
    hashed: int = _murmur2(bytes(key))
    return (hashed & 0x7FFFFFFF) % partitions


# The clients' murmur2 is pure Python (3 us for a person id, 8-14 us for a 60-byte token
# key), and the same keys come again and again (a person's events, each hop and table
# write): kept for 16,384 keys, a few MB at most (keys are under 100 bytes).
_murmur2 = lru_cache(maxsize=16_384)(murmur2)
