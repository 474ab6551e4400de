"""The stewards' charts from ``GET /v1/patterns``'s JSON and the books, with plain dicts."""

from __future__ import annotations

from typing import Any

from hub.steward_charts import PLACE_LABEL, SILENT_AFTER_S, co_occurrence, health, trends

W1, W2, W3 = "2026-11-09T00:00:00+00:00", "2026-11-16T00:00:00+00:00", "2026-11-23T00:00:00+00:00"


def cell(
    window: str,
    measure: str,
    area: str | None,
    combination: str,
    count: int | None,
    granularity: str = "week",
) -> dict[str, Any]:
    return {
        "granularity": granularity,
        "window_start": window,
        "window_end": window,  # not read by the page
        "measure": measure,
        "area_code": area,
        "combination_code": combination,
        "count": count,
        "suppressed": count is None,
        "previous": None,
        "trend": None,
    }


def patterns(*cells: dict[str, Any]) -> dict[str, Any]:
    rule = {"rule": "the rule", "threshold": 5, "base": 5}
    return {"disclosure": rule, "filters": {}, "cells": list(cells), "late_events": []}


def test_trends_give_one_chart_per_area_place_first_one_line_per_domain() -> None:
    found = trends(
        patterns(
            cell(W2, "domain", "E05000002", "housing", 10),
            cell(W1, "domain", "E05000001", "housing", 5),
            cell(W1, "domain", None, "housing", 15),
            cell(W2, "domain", None, "housing", 10),
            cell(W2, "domain", None, "education", 5),
            cell(W1, "co_occurrence", None, "education+housing", 5),  # another measure
            cell(W1, "domain", None, "health", 20, granularity="month"),  # another window
        )
    )
    assert [(c["area_code"], c["label"]) for c in found] == [
        (None, PLACE_LABEL),
        ("E05000001", "E05000001"),
        ("E05000002", "E05000002"),
    ]
    place = found[0]
    assert place["windows"] == ["2026-11-09", "2026-11-16"]
    # A week with cells but none for a domain is 0 (nobody: 0 cells are not published).
    assert place["lines"] == [
        {"name": "education", "values": [0, 5]},
        {"name": "housing", "values": [15, 10]},
    ]
    assert found[2]["lines"] == [{"name": "housing", "values": [0, 10]}]


def test_a_suppressed_cell_stays_none_whatever_its_count_says() -> None:
    leaked = cell(W1, "domain", None, "housing", None) | {"count": 3}
    found = trends(patterns(leaked, cell(W2, "domain", None, "housing", 5)))
    assert found[0]["lines"] == [{"name": "housing", "values": [None, 5]}]


def test_no_patterns_give_no_charts() -> None:
    assert trends({}) == []
    assert co_occurrence({}) == {
        "window_start": None,
        "domains": [],
        "values": [],
        "suppressed": [],
        "matrix": [],
    }


def test_co_occurrence_is_the_latest_weeks_symmetric_matrix_for_the_whole_place() -> None:
    found = co_occurrence(
        patterns(
            cell(W2, "co_occurrence", None, "education+housing", 10),
            cell(W2, "co_occurrence", None, "health+housing", None),
            cell(W1, "co_occurrence", None, "education+health", 25),  # an earlier week
            cell(W2, "co_occurrence", "E05000001", "education+health", 5),  # an area
            cell(W3, "domain", None, "housing", 30),  # another measure
        )
    )
    assert found["window_start"] == "2026-11-16"
    assert found["domains"] == ["education", "health", "housing"]
    assert found["values"] == [[0, 2, 10], [2, 0, 10]]
    assert found["suppressed"] == [[1, 2], [2, 1]]
    assert found["matrix"] == [[0, 0, 10], [0, 0, None], [10, None, 0]]


def test_health_puts_every_book_through_the_rule_and_flags_silent_partners() -> None:
    def rounded(n: int) -> int | None:
        return None if n < 5 else 5 * round(n / 5)

    books = {
        "council-housing": {"received": 12, "in_view": 9, "held_in_quarantine": 3,
                            "dead_lettered": 0, "duplicate": 1},
        "city-health": {"received": 0, "in_view": 0, "held_in_quarantine": 0,
                        "dead_lettered": 0, "duplicate": 0},
    }  # fmt: skip
    now = 1_800_000_000.0
    found = health(books, {"council-housing": now - 60}, now, rounded)
    assert found == [
        {"partner": "city-health", "last_event_at": None, "silent": True,
         "received": 0, "in_view": 0, "held_in_quarantine": 0, "dead_lettered": 0},
        {"partner": "council-housing", "last_event_at": "2027-01-15T07:59Z", "silent": False,
         "received": 10, "in_view": 10, "held_in_quarantine": None, "dead_lettered": 0},
    ]  # fmt: skip
    stale = health(books, {"council-housing": now - SILENT_AFTER_S - 1}, now, rounded)
    assert stale[1]["silent"] is True
