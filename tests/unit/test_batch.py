"""Batch records on the internal topics: round trip, order, size cuts, partitioning."""

from __future__ import annotations

import contextlib
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from hub import batch
from hub.batch import Item, Op
from hub.errors import DecodeError


def test_items_round_trip_in_order() -> None:
    items = [
        Item(Op.EVENT, "e-1", source="t:0:1", tokens=["nhs:a", "upn:b"], raw=b"\x00\x01"),
        Item(Op.MERGE, "p-old", into="p-new"),
        Item(Op.SPLIT, "p-old", parts={"p-a": ["nhs:a"], "p-b": ["upn:b"]}),
        Item(Op.ERASE, "c-1", tokens=["nhs:a"]),
    ]
    assert batch.decode(batch.encode(items)) == items


def test_a_truncated_batch_record_fails_loudly() -> None:
    data = batch.encode([Item(Op.EVENT, "e-1", raw=b"x" * 100)])
    with pytest.raises(DecodeError, match=r"batch record cannot be read: .*truncated"):
        batch.decode(data[:-10])


GOOD = batch.encode([Item(Op.EVENT, "e-1", source="t:0:1", tokens=["nhs:a"], raw=b"\x00\x01")])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "no value"),
        (b"", "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
        (GOOD[:2] + b"\x7e" + GOOD[3:], "truncated"),  # the key claims 63 bytes
        (b"\x02\x00\x0a\xff\xfe\xfd\xfc\xfb", "not UTF-8"),  # one item whose key is not text
        (b"\x02\x0e\x00", "enum symbol index is out of range"),  # an operation there is not
        (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "truncated"),  # 2**62 items, none there
    ],
    ids=[
        "null",
        "empty",
        "trailing-byte",
        "long-string",
        "invalid-utf8",
        "unknown-op",
        "huge-count",
    ],
)
def test_a_malformed_batch_record_is_a_decode_error(data: bytes | None, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        batch.decode(data)


def test_every_truncation_and_random_garbage_is_a_decode_error() -> None:
    """Nothing but a DecodeError may come out of a batch record, whatever its bytes."""
    for length in range(len(GOOD)):
        with pytest.raises(DecodeError):
            batch.decode(GOOD[:length])
    rng = random.Random(20260302)
    for _ in range(2000):
        garbage = rng.randbytes(rng.randrange(1, 200))
        mutated = bytearray(GOOD)
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        for data in (garbage, bytes(mutated)):
            with contextlib.suppress(DecodeError):
                batch.decode(data)


def test_chunks_keep_order_and_stay_under_the_limit() -> None:
    items = [Item(Op.EVENT, f"e-{i}", raw=b"x" * 100) for i in range(25)]
    runs = list(batch.chunks(items, limit=1000))
    assert [i for run in runs for i in run] == items
    assert all(sum(len(i.raw or b"") + len(i.key) for i in run) <= 1000 for run in runs)
    assert len(runs) == 3


def test_an_item_over_the_limit_travels_alone() -> None:
    big, small = Item(Op.EVENT, "big", raw=b"x" * 5000), Item(Op.EVENT, "small", raw=b"x")
    assert list(batch.chunks([small, big, small], limit=1000)) == [[small], [big], [small]]


def test_partition_matches_kafkas_default_partitioner() -> None:
    """Faust routes table reads by the producer's partitioner: the views must agree."""
    partitioner = DefaultPartitioner()
    for n in (1, 4, 12):
        for i in range(200):
            key = f"p-{i:05d}".encode()
            expected = partitioner(key, list(range(n)), list(range(n)))
            assert batch.partition_for(key, n) == expected
