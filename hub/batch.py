"""Batches: many work items in one record on the hub's internal topics.

Every record a Faust agent reads or sends costs far more than the hub's own work on it
(the benchmarks measured a consume at ~80 µs and a send at ~150 µs of worker time), so
the internal hops carry work in batches: the gate sends one record per batch it read to
identity, and identity one record per view partition to the view. Contract topics
(hub.events, hub.quarantine, hub.dlq) still get one record per event.

The format is Avro (fastavro, schemaless: internal topics are not contracts and their
schema is this module's), so a truncated or foreign record fails loudly.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import fastavro

from hub.codec import ParsedSchema, decode_body
from hub.errors import DecodeError
from hub.partitions import partition_for

__all__ = ["ENVELOPE_BYTES", "Item", "Op", "chunks", "decode", "encode", "partition_for"]

# Raw bytes per batch record, well under the broker's default 1 MiB record limit (an item
# larger than this travels alone).
ENVELOPE_BYTES = 512 * 1024

_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Batch",
        "namespace": "org.placehub.internal",
        "fields": [
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Item",
                        "fields": [
                            {
                                "name": "op",
                                "type": {
                                    "type": "enum",
                                    "name": "Op",
                                    "symbols": [
                                        "event",
                                        "link",
                                        "erase",
                                        "merge",
                                        "split",
                                        "sweep",
                                        "timeline",
                                    ],
                                },
                            },
                            {"name": "key", "type": "string"},
                            {"name": "source", "type": "string", "default": ""},
                            {
                                "name": "tokens",
                                "type": {"type": "array", "items": "string"},
                                "default": [],
                            },
                            {"name": "raw", "type": ["null", "bytes"], "default": None},
                            {"name": "into", "type": "string", "default": ""},
                            {"name": "basis", "type": "string", "default": ""},
                            {
                                "name": "parts",
                                "type": {
                                    "type": "map",
                                    "values": {"type": "array", "items": "string"},
                                },
                                "default": {},
                            },
                        ],
                    },
                },
            }
        ],
    }
)


class Op(StrEnum):
    """What an item asks of the stage that reads it."""

    EVENT = "event"  # identity: place an admitted event; view: fold it in
    LINK = "link"  # identity: apply a partner's link assertion or retraction
    ERASE = "erase"  # identity: forget a consent's people; view: drop ``basis``'s entries
    MERGE = "merge"  # view: hand the person's entries ``into`` another person
    SPLIT = "split"  # view: share the person's entries out to ``parts``
    SWEEP = "sweep"  # view: expire what retention has passed
    TIMELINE = "timeline"  # alerts: the person's timeline now (``raw``: codes, JSON)


@dataclass(frozen=True)
class Item:
    """One piece of work: an operation on ``key`` (an event, link, consent or person id).

    ``source`` is the partner record it came from (for accounting), ``tokens`` the
    pseudonymous tokens identity needs, ``raw`` the framed record the operation is about;
    ``into``, ``basis`` and ``parts`` are the arguments of a merge, an erasure at the view
    and a split (new person id → its tokens); an event's ``basis`` is its consent id (empty
    under an agreement).
    """

    op: Op
    key: str
    source: str = ""
    tokens: list[str] = field(default_factory=list)
    raw: bytes | None = None
    into: str = ""
    basis: str = ""
    parts: dict[str, list[str]] = field(default_factory=dict)

    def to_avro(self) -> dict[str, Any]:
        return {
            "op": self.op.value,
            "key": self.key,
            "source": self.source,
            "tokens": self.tokens,
            "raw": self.raw,
            "into": self.into,
            "basis": self.basis,
            "parts": self.parts,
        }


def encode(items: Iterable[Item]) -> bytes:
    """One batch record holding ``items`` in order."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, _SCHEMA, {"items": [i.to_avro() for i in items]})
    return buffer.getvalue()


def decode(data: bytes | None) -> list[Item]:
    """The items of a batch record, in the order they were sent.

    Raises DecodeError if ``data`` is not exactly one batch record: null, truncated,
    garbage or trailing bytes (the codec's strict reading, so no decoder error escapes).
    """
    if data is None:
        raise DecodeError("batch record has no value (null)")
    try:
        record = decode_body(data, cast(ParsedSchema, _SCHEMA))
    except DecodeError as exc:
        raise DecodeError(f"batch record cannot be read: {exc}") from None
    return [Item(**{**item, "op": Op(item["op"])}) for item in record["items"]]


def chunks(items: list[Item], limit: int = ENVELOPE_BYTES) -> Iterator[list[Item]]:
    """``items`` cut into runs whose raw bytes stay under ``limit`` (order kept)."""
    run: list[Item] = []
    size = 0
    for item in items:
        length = len(item.raw or b"") + len(item.key) + len(item.into) + len(item.basis)
        length += sum(len(p) + sum(map(len, tokens)) for p, tokens in item.parts.items())
        if run and size + length > limit:
            yield run
            run, size = [], 0
        run.append(item)
        size += length
    if run:
        yield run
