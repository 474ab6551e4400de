"""The broker tests' own reckoning of patterns (tests/expected_patterns.py), on plain data:
one area per person and window, new against returning, transitions, the windows' ends and
grace, and the reader who works out suppressed cells from months and their weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hub.disclosure import round_count
from tests.expected_patterns import (
    Cell,
    Sent,
    closed,
    late_counts,
    pinned,
    published,
    reader_constraints,
    true_counts,
    window_end,
    windows,
)

MONDAY = datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_a_person_counts_once_in_the_area_of_their_latest_event_and_in_the_place() -> None:
    sent = [
        Sent("p", "housing.arrears", "council-housing", MONDAY, "E05000001"),
        Sent("p", "health.ae_attendance", "city-health", MONDAY + timedelta(days=1), "E05000002"),
        Sent("p", "housing.arrears", "council-housing", MONDAY + timedelta(days=2), None),
    ]
    week = {c: n for c, n in true_counts(sent).items() if c[0] == "week"}
    monday = MONDAY.date()
    assert week == {
        ("week", monday, measure, area, combination): 1
        for area in ("E05000002", None)
        for measure, combination in [
            ("domain", "housing"),
            ("domain", "health"),
            ("event_type", "housing.arrears"),
            ("event_type", "health.ae_attendance"),
            ("co_occurrence", "health+housing"),
            ("new_or_returning", "new"),
        ]
    }


def test_an_earlier_event_makes_a_person_returning_and_a_transition_needs_two_partners() -> None:
    sent = [
        Sent("p", "housing.arrears", "council-housing", MONDAY - timedelta(days=3), "E05000001"),
        Sent("p", "health.ae_attendance", "city-health", MONDAY, "E05000001"),
        Sent("p", "health.ae_attendance", "city-health", MONDAY + timedelta(days=1), "E05000001"),
        Sent("q", "health.ae_attendance", "city-health", MONDAY, "E05000001"),
    ]
    week = MONDAY.date()
    counts = true_counts(sent, counted={("week", week)}, flows=True)
    assert counts["week", week, "new_or_returning", None, "returning"] == 1
    assert counts["week", week, "new_or_returning", None, "new"] == 1
    assert counts["week", week, "transition", None, "council-housing>city-health"] == 1
    assert counts["week", week, "services", None, "one"] == 2
    assert {c[:2] for c in counts} == {("week", week)}
    far = true_counts(sent, flows=True, within=timedelta(days=2))
    assert ("week", week, "transition", None, "council-housing>city-health") not in far


def test_windows_end_on_monday_and_the_first_and_close_after_the_grace() -> None:
    assert window_end("week", date(2026, 11, 30)) == datetime(2026, 12, 7, tzinfo=UTC)
    assert window_end("month", date(2026, 12, 1)) == datetime(2027, 1, 1, tzinfo=UTC)
    grace = timedelta(days=14)
    end = datetime(2026, 12, 7, tzinfo=UTC)
    assert not closed("week", date(2026, 11, 30), end + grace, grace)
    assert closed("week", date(2026, 11, 30), end + grace + timedelta(seconds=1), grace)


def test_late_events_count_in_their_week_and_month_under_the_rule() -> None:
    late = [w for at in [MONDAY] * 6 + [MONDAY + timedelta(days=8)] for w in windows(at)]
    assert late_counts(late) == {
        ("week", MONDAY.date()): 5,
        ("week", MONDAY.date() + timedelta(days=7)): None,
        ("month", MONDAY.date().replace(day=1)): 5,
    }


def _month_and_weeks(now: list[int], prev: list[int], overlap: list[int]) -> dict[Cell, int]:
    """Areas A, B, C in February 2027's first two weeks (Mondays the 1st and 8th) and in
    the month (``overlap``: people in both weeks, per area and for the place)."""
    month, weeks = date(2027, 2, 1), (date(2027, 2, 1), date(2027, 2, 8))
    counts: dict[Cell, int] = {}
    for week, values in zip(weeks, (now, prev), strict=True):
        for area, n in zip("ABC", values, strict=True):
            counts["week", week, "domain", area, "housing"] = n
        counts["week", week, "domain", None, "housing"] = sum(values)
    for area, both in zip(["A", "B", "C", None], overlap, strict=True):
        in_weeks = [counts["week", w, "domain", area, "housing"] for w in weeks]
        counts["month", month, "domain", area, "housing"] = sum(in_weeks) - both
    return {cell: n for cell, n in counts.items() if n}


def test_the_reader_pins_small_cells_from_a_month_and_its_weeks_without_secondary_suppression() -> (
    None
):
    counts = _month_and_weeks([2, 5, 5], [3, 8, 1], [0, 5, 0, 5])
    constraints = reader_constraints(counts)
    primary_only = {cell: round_count(n) for cell, n in counts.items()}
    assert pinned(counts, primary_only, constraints) == [
        ("week", date(2027, 2, 1), "domain", "A", "housing"),
        ("week", date(2027, 2, 8), "domain", "A", "housing"),
        ("week", date(2027, 2, 8), "domain", "C", "housing"),
    ]
    assert pinned(counts, published(counts), constraints) == []


def test_the_reader_pins_nothing_the_window_by_window_control_publishes() -> None:
    counts = _month_and_weeks([1, 1, 5], [13, 6, 8], [1, 1, 3, 5])
    constraints = reader_constraints(counts)
    primary_only = {cell: round_count(n) for cell, n in counts.items()}
    assert len(pinned(counts, primary_only, constraints)) == 2
    assert pinned(counts, published(counts), constraints) == []
