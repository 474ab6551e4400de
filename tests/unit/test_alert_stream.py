"""Where a live alert stream stands and resumes: positions, the cursor, catching up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from hub import alert_stream
from hub.access import Reader
from hub.alert_feed import (
    BadPosition,
    Cursor,
    FeedRecord,
    Subscription,
    encode_position,
    latest_of_each,
    live_batches,
    parse_position,
)
from hub.models import Alert, AlertSeverity
from hub.users import Role


def test_a_position_round_trips() -> None:
    assert parse_position(encode_position([0, 12, 3, 9_000_000]), 4) == [0, 12, 3, 9_000_000]
    assert encode_position([5, 0]) == "5.0"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("1.2.3", "one offset for each of the 4 partitions"),
        ("1.2.3.4.5", "one offset for each of the 4 partitions"),
        ("", "one offset for each of the 4 partitions"),
        ("1.2.x.4", "whole number"),
        ("1.-2.3.4", "whole number"),
        ("1.2.3.4 ", "whole number"),  # only the client's own id, as sent
        ("1.2..4", "whole number"),
        ("1.2.3." + "9" * 19, "at most 18 digits"),
        ("1.2.3.+4", "whole number"),
    ],
)
def test_a_position_that_is_not_one_is_refused_by_rule_not_value(text: str, rule: str) -> None:
    with pytest.raises(BadPosition) as refused:
        parse_position(text, 4)
    assert rule in str(refused.value)
    assert text.strip(".") not in str(refused.value) or not text.strip(".")


def record(partition: int, offset: int, alert_id: str = "a") -> FeedRecord:
    return FeedRecord(partition, offset, alert_id, None)


def test_a_cursor_passes_each_record_once_and_moves_past_it() -> None:
    cursor = Cursor([3, 0])
    assert not cursor.passes(record(0, 2))  # before where the stream stands: had it
    assert cursor.passes(record(0, 3))
    assert not cursor.passes(record(0, 3))  # the same record again (catch-up, then live)
    assert cursor.passes(record(1, 7))
    assert cursor.id == "4.8"


def test_catching_up_moves_only_forward() -> None:
    cursor = Cursor([5, 1])
    cursor.catch_up([2, 6])  # where the live feed took over
    assert cursor.offsets == [5, 6]


def test_catching_up_sends_each_alert_as_it_stands_last() -> None:
    raised, escalated = record(0, 1, "a"), record(0, 4, "a")
    other, erased = record(1, 2, "b"), record(1, 5, "b")
    assert latest_of_each([raised, other, escalated, erased]) == [escalated, erased]


def test_a_cursor_takes_the_new_records_each_with_the_id_after_it() -> None:
    cursor = Cursor([0, 4])
    taken = cursor.take([record(1, 3), record(0, 0), record(1, 4)])
    assert [(r.partition, r.offset, i) for r, i in taken] == [(0, 0, "1.4"), (1, 4, "1.5")]


async def test_live_records_come_as_batches_of_what_arrived_until_the_feed_ends() -> None:
    subscription = Subscription([0, 0])
    cursor = Cursor([0, 0])
    for item in (record(0, 0), record(0, 0), record(1, 0), None, record(1, 1)):
        subscription.queue.put_nowait(item)
    batches = [batch async for batch in live_batches(subscription, cursor)]
    assert [[i for _, i in batch] for batch in batches] == [["1.0", "1.1"]]  # once each


class _Sent:
    """An SSE response that keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, data: str, id: str, event: str) -> None:
        self.sent.append((event, id, data))


def _live(row: dict[str, object] | None, erased: set[str]) -> Any:
    async def no_row() -> dict[str, object] | None:
        return row

    feed = SimpleNamespace(recipients={"a-1": ("council-housing",)}, erased=erased)
    return SimpleNamespace(feed=feed, row=lambda record: asyncio.ensure_future(no_row()))


def _raised(alert_id: str) -> FeedRecord:
    alert = Alert(
        alert_id=alert_id,
        person_id="p-n62bzm7ly6hypqloy3bt",
        rule_code="multi-domain-needs",
        severity=AlertSeverity.HIGH,
        explanation=["housing.arrears"],
        event_ids=["0f8c6a8e-5c1b-4f7e-9a43-6f2d1e3b7c90"],
        partners=["council-housing"],
        created_at=datetime.now(UTC),
        recipients=["council-housing"],
    )
    return FeedRecord(0, 1, alert_id, alert)


async def test_a_stream_stops_before_an_alert_whose_row_cannot_be_had() -> None:
    reader = Reader("alex.housing", Role.PRACTITIONER, "council-housing")
    batch = [(record(0, 0, "a-1"), "1.0"), (_raised("a-2"), "2.0"), (record(0, 2, "a-3"), "3.0")]
    sse = _Sent()
    user = None  # no alert is sent, so nothing is audited
    assert not await alert_stream._send(_live(None, set()), sse, user, reader, batch)  # type: ignore[arg-type]
    assert sse.sent == [("erased", "1.0", '{"alert_id": "a-1"}')]  # the client resumes at 1.0
    # Erased since (its tombstone read): skipped, and the stream goes on.
    sse = _Sent()
    assert await alert_stream._send(_live(None, {"a-2"}), sse, user, reader, batch)  # type: ignore[arg-type]
    assert [(e, i) for e, i, _ in sse.sent] == [("erased", "1.0"), ("erased", "3.0")]
