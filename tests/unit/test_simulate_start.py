"""The simulator's events start where they are asked to: the demo's continuing load keeps
to the last hour, so its events fall in open pattern windows instead of counting late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.simulate import Place, recent_start


def test_events_from_a_start_fall_between_it_and_now() -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    moments = [draft.occurred_at for _, draft in Place(seed=7, people=50).events(40, start)]
    assert len(moments) == 40
    assert all(start < moment <= datetime.now(UTC) for moment in moments)


def test_events_start_60_days_back_by_default() -> None:
    moments = [draft.occurred_at for _, draft in Place(seed=7, people=50).events(40)]
    assert min(moments) >= recent_start() and min(moments) < recent_start() + timedelta(days=7)
