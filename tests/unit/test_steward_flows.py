"""The stewards' page's flows section from a ``GET /v1/flows`` answer written out as a
plain dict: the window a steward chooses (the latest week by default, a bad choice
ignored), the matrix's suppressed pairs apart, the referrals' bars as published, nothing
summed."""

from __future__ import annotations

from typing import Any

from hub.steward_flows import flow_choices, flow_section

HOUSING, FOOD, HEALTH = "council-housing", "city-food-bank", "city-health"
RULE, MEDIAN_RULE = "counts under 5 suppressed", "medians over at least 5 referrals"


def window(granularity: str, start: str, **parts: Any) -> dict[str, Any]:
    found = {"granularity": granularity, "window_start": f"{start}T00:00:00+00:00",
             "area": None, "partners": [], "matrix": [], "referrals": [],
             "services": {"one": 0, "several": 0}, "median_days": []}  # fmt: skip
    return found | parts


ANSWER = {
    "disclosure": {"rule": RULE, "median_rule": MEDIAN_RULE, "threshold": 5, "base": 5},
    "windows": [
        window("week", "2026-11-16", partners=[HEALTH, HOUSING], matrix=[[0, 5], [0, 0]]),
        window(
            "week",
            "2026-11-23",
            partners=[FOOD, HEALTH, HOUSING],
            matrix=[[0, 0, 0], [0, 0, None], [15, 0, 0]],
            referrals=[{"to": FOOD, "made": 15, "accepted": 10, "declined": 0, "completed": None}],
            services={"one": 5, "several": 15},
            median_days=[{"from": HOUSING, "to": FOOD, "referrals": 15, "median_days": 2}],
        ),
        window(
            "week",
            "2026-11-23",
            area="E05000001",
            partners=[FOOD, HOUSING],
            matrix=[[0, 0], [10, 0]],
        ),
        window("month", "2026-11-01", partners=[HOUSING, FOOD], matrix=[[0, 20], [0, 0]]),
    ],
}


def test_the_choices_are_the_whole_places_windows_weeks_then_months_newest_first() -> None:
    assert [c["value"] for c in flow_choices(ANSWER)] == [
        "week|2026-11-23",
        "week|2026-11-16",
        "month|2026-11-01",
    ]
    assert flow_choices({"windows": []}) == []


def test_the_latest_week_by_default_with_suppressed_pairs_apart_and_the_referrals_bars() -> None:
    shown = flow_section(ANSWER)
    assert (shown["choice"], shown["granularity"], shown["window_start"]) == (
        "week|2026-11-23",
        "week",
        "2026-11-23",
    )
    assert shown["partners"] == [FOOD, HEALTH, HOUSING]  # the place's, not the ward's
    assert shown["values"] == [[0, 2, 15]]  # to the food bank (x) from the council (y)
    assert shown["suppressed"] == [[2, 1]]  # from the hospital to the council
    assert shown["receivers"] == [FOOD]
    assert shown["referral_steps"] == [
        {"name": "made", "values": [15]},
        {"name": "accepted", "values": [10]},
        {"name": "completed", "values": [None]},  # suppressed stays None, not 0
    ]
    assert shown["services"] == {"one": 5, "several": 15}
    assert shown["medians"] == [{"label": f"{HOUSING} → {FOOD}", "days": 2, "referrals": 15}]
    assert shown["rules"] == [RULE, MEDIAN_RULE]


def test_a_chosen_window_is_shown_and_a_choice_not_offered_falls_back_to_the_latest_week() -> None:
    month = flow_section(ANSWER, "month|2026-11-01")
    assert (month["granularity"], month["window_start"], month["values"]) == (
        "month",
        "2026-11-01",
        [[1, 0, 20]],
    )
    assert month["referrals"] == [] and month["referral_steps"][0] == {"name": "made", "values": []}
    for bad in ("week|2020-01-06", "day|2026-11-23", "nonsense", ""):
        assert flow_section(ANSWER, bad)["choice"] == "week|2026-11-23"


def test_nothing_published_is_an_empty_section_that_still_states_the_rules() -> None:
    shown = flow_section({"disclosure": ANSWER["disclosure"], "windows": []})
    assert (shown["choice"], shown["choices"], shown["partners"], shown["values"]) == (
        None,
        [],
        [],
        [],
    )
    assert shown["receivers"] == [] and shown["rules"] == [RULE, MEDIAN_RULE]
