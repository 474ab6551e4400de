"""Whether a hub stage has absorbed everything on its inputs, read off the stages' marks.

Each stage writes its *marks* (per input partition, the offsets it has done, as ranges)
last in every batch, after the batch's outputs and table writes have all been delivered
(``hub.runtime.run``). So a stage whose marks cover an input partition from its first
offset to its end has read every record on it and delivered everything those records
cause, outputs to the next stage included. Faust writes the marks table's changelog
(``<app id>-marks-changelog``, compacted, key ``"stage|topic|partition"`` as JSON, value the
ranges as JSON) as each batch lands, so tailing it shows a stage done within a poll, where
the committed offsets would trail by up to ``Settings.commit_interval_s``.

A chain of stages (view → patterns-people → patterns) is checked in order, each stage's
input ends read only after the stage before it was found done: its outputs are then on
the next stage's topics, so a check cannot pass before the last record is absorbed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from hub.config import Settings
from hub.kafka_clients import confluent_options
from hub.runtime.commits import as_ranges, mark_key
from hub.stages.offsets import Ranges, first_not_done

__all__ = ["MarksReader", "not_done"]

# (topic, partition) -> (first offset on the broker, end offset)
Extents = Mapping[tuple[str, int], tuple[int, int]]


def not_done(marks: Mapping[str, Ranges], stage: str, extents: Extents) -> int:
    """How many records of ``extents`` (its input partitions) ``stage``'s marks do not
    cover: from each partition's first offset up to its end, stopping at the first gap."""
    behind = 0
    for (topic, partition), (first, end) in extents.items():
        ranges = marks.get(mark_key(stage, topic, partition), [])
        behind += max(end - first_not_done(ranges, first), 0)
    return behind


class MarksReader:
    """Tails one hub's marks changelog and answers whether stages have absorbed their inputs."""

    def __init__(self, settings: Settings, timeout_s: float = 30) -> None:
        self.changelog = f"{settings.app_id}-marks-changelog"
        self.timeout_s = timeout_s
        self.marks: dict[str, Ranges] = {}
        config = {
            "group.id": f"{settings.app_id}-bench-marks",
            "enable.auto.commit": False,
            # A broker answers a connection's requests in order, so offset requests on the
            # tailing consumer's connection wait behind its fetch: ask on another, and
            # keep the fetch short.
            "fetch.wait.max.ms": 10,
        }
        # End offsets and partitions only; reads nothing.
        self.offsets = Consumer({**confluent_options(settings), **config})
        self.consumer = Consumer({**confluent_options(settings), **config})
        self.consumer.assign(
            [
                TopicPartition(self.changelog, p, OFFSET_BEGINNING)
                for p in self._partitions(self.changelog)
            ]
        )

    def close(self) -> None:
        self.consumer.close()
        self.offsets.close()

    def behind(self, chain: Sequence[tuple[str, Iterable[str]]]) -> tuple[str, int] | None:
        """The first stage of ``chain`` (stage, its input topics) with records it has not
        absorbed, and how many; None when every stage of it is done."""
        for stage, topics in chain:
            extents = self._extents(topics)  # read before the marks: see the module docstring
            self.catch_up()
            missing = not_done(self.marks, stage, extents)
            if missing:
                return stage, missing
        return None

    def _partitions(self, topic: str) -> list[int]:
        metadata = self.offsets.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None or not metadata.partitions:
            raise RuntimeError(f"topic {topic} has no partitions ({metadata.error})")
        return sorted(metadata.partitions)

    def _extents(self, topics: Iterable[str]) -> dict[tuple[str, int], tuple[int, int]]:
        extents = {}
        for topic in topics:
            for p in self._partitions(topic):
                first, end = self.offsets.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                extents[topic, p] = (first, end)
        return extents

    def catch_up(self) -> None:
        """Read the changelog up to the end it has now."""
        ends = self._extents([self.changelog])
        deadline = time.monotonic() + self.timeout_s
        while True:
            positions = self.consumer.position([TopicPartition(t, p) for t, p in ends])
            # An empty partition has no position to reach (it stays invalid, below 0).
            if all(
                tp.offset >= ends[tp.topic, tp.partition][1]
                or ends[tp.topic, tp.partition][0] == ends[tp.topic, tp.partition][1]
                for tp in positions
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out reading {self.changelog} to its end")
            for message in self.consumer.consume(num_messages=10_000, timeout=0.02):
                if message.error() is None:
                    self._take(message.key(), message.value())

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        name = json.loads(key)
        stored: Any = json.loads(value) if value is not None else None
        self.marks[name] = as_ranges(stored)
