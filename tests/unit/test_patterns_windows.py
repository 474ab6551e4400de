"""The patterns' calendar windows and the cells a person is counted in, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.stages.pattern_windows import NO_AREA, Seen, Window, person_cells, windows_of

# A Wednesday in the middle of a month, relative to nothing that expires.
WED = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
WARD, OTHER = "E05000001", "E05000002"


def test_a_week_starts_on_monday_and_a_month_on_the_first_in_utc() -> None:
    week, month = windows_of(WED)
    assert (week.id, week.end) == ("week:2026-11-23", datetime(2026, 11, 30, tzinfo=UTC))
    assert (month.id, month.end) == ("month:2026-11-01", datetime(2026, 12, 1, tzinfo=UTC))
    december = windows_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))[1]
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert week.previous().id == "week:2026-11-16" and month.previous().id == "month:2026-10-01"
    # Late on Sunday two hours west of UTC is Monday in UTC: the next week.
    late_sunday = datetime(2026, 11, 29, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert windows_of(late_sunday)[0].id == "week:2026-11-30"


def test_a_window_id_reads_back_and_a_wrong_start_is_refused() -> None:
    assert Window.parse("week:2026-11-23") == windows_of(WED)[0]
    for bad in ("week:2026-11-24", "month:2026-11-02", "day:2026-11-23", "week:nope"):
        with pytest.raises(ValueError):
            Window.parse(bad)


def test_a_window_closes_only_once_the_watermark_is_past_its_end_and_grace() -> None:
    week = windows_of(WED)[0]
    grace = timedelta(days=14)
    assert not week.closed(None, grace)
    assert not week.closed(week.end + grace, grace)
    assert week.closed(week.end + grace + timedelta(seconds=1), grace)


def seen(event_type: str, at: datetime, area: str | None = WARD) -> Seen:
    return Seen(event_type, at, area)


def test_a_person_counts_once_per_cell_in_their_latest_area_and_in_the_place() -> None:
    week = windows_of(WED)[0]
    entries = [
        seen("housing.arrears", WED - timedelta(days=1), OTHER),
        seen("housing.eviction", WED),
        seen("education.suspension", WED, None),
        seen("health.ae_attendance", WED + timedelta(days=30)),  # another window
    ]
    cells = person_cells(entries, week)
    for area in (WARD, ""):  # the latest area with a code, and the place total
        assert {
            f"domain|{area}|housing",
            f"domain|{area}|education",
            f"event_type|{area}|housing.arrears",
            f"event_type|{area}|housing.eviction",
            f"event_type|{area}|education.suspension",
            f"co_occurrence|{area}|education+housing",
            f"new_or_returning|{area}|new",
        } <= cells
    assert not any(f"|{OTHER}|" in c or "health" in c for c in cells)
    assert len(cells) == 14


def test_new_or_returning_looks_before_the_window_and_no_area_is_its_own_member() -> None:
    week = windows_of(WED)[0]
    before = seen("housing.arrears", WED - timedelta(days=40), None)
    now = seen("housing.arrears", WED, None)
    assert f"new_or_returning|{NO_AREA}|returning" in person_cells([before, now], week)
    assert "new_or_returning||new" in person_cells([now], week)
    assert person_cells([before], week) == set()
