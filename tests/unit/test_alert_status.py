"""An alert's status in one organisation's inbox: what was set and given since it was
last raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.alert_status import (
    DEFAULT_SHOWN,
    BadStatus,
    InboxStatus,
    Marks,
    status_of,
    statuses_asked,
)

RAISED = datetime.now(UTC) - timedelta(days=1)
BEFORE, AFTER, LATER = (
    RAISED - timedelta(hours=1),
    RAISED + timedelta(hours=1),
    RAISED + timedelta(hours=2),
)
OPEN, ACK, CLOSED = InboxStatus.OPEN, InboxStatus.ACKNOWLEDGED, InboxStatus.CLOSED


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        (None, OPEN),
        (Marks(), OPEN),
        (Marks(AFTER, ACK), ACK),
        (Marks(AFTER, CLOSED), CLOSED),
        (Marks(feedback_at=AFTER), ACK),  # feedback acknowledges
        (Marks(AFTER, CLOSED, feedback_at=LATER), CLOSED),  # but does not reopen
        (Marks(AFTER, OPEN, feedback_at=LATER), ACK),  # reopened, then feedback
        (Marks(LATER, OPEN, feedback_at=AFTER), OPEN),  # feedback, then reopened
        (Marks(BEFORE, CLOSED), OPEN),  # closed, then escalated: new facts, open again
        (Marks(feedback_at=BEFORE), OPEN),
        (Marks(BEFORE, CLOSED, feedback_at=AFTER), ACK),
        (Marks(RAISED, CLOSED), CLOSED),  # set in the same millisecond: counts
    ],
)
def test_status_is_what_was_set_and_given_since_the_last_raise(
    marks: Marks | None, expected: InboxStatus
) -> None:
    assert status_of(marks, RAISED) is expected


def test_an_inbox_shows_open_and_acknowledged_unless_asked() -> None:
    assert statuses_asked([]) == DEFAULT_SHOWN == {OPEN, ACK}
    assert statuses_asked(["closed"]) == {CLOSED}
    assert statuses_asked(["open,closed"]) == {OPEN, CLOSED}
    assert statuses_asked(["open", "acknowledged"]) == {OPEN, ACK}


@pytest.mark.parametrize("values", [["JANE"], ["open,"], ["Open"], [""]])
def test_a_status_that_is_not_one_is_refused_naming_the_field(values: list[str]) -> None:
    with pytest.raises(BadStatus) as refused:
        statuses_asked(values)
    assert str(refused.value) == "status: must be open, acknowledged or closed"
