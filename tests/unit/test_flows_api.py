"""The flows API's pure parts with plain values: its filters, the matrix per window and
area cut from published cells (null where suppressed, 0 where none is published, nothing
summed), and the patterns' answer leaving the flows to it; then the stewards' page's
flow matrix series from such an answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.disclosure import RULE
from hub.flows_api import flow_rows, flows_answer, parse_flow_filters
from hub.models import PatternCell
from hub.patterns_api import BadFilter, Filters, answer
from hub.stages.pattern_flows import MEDIAN_RULE
from hub.stages.pattern_windows import Window, windows_of
from hub.stages.patterns import pattern_cell
from hub.steward_flows import flow_matrix, flow_windows

WARD = "E05000001"
HOUSING, FOOD, GP = "council-housing", "city-food-bank", "city-gp-federation"
THIS = windows_of(datetime.now(UTC) - timedelta(days=3))[0]
LAST = THIS.previous()


def cells(*items: tuple[Window, str, int | None, int | None]) -> dict[str, PatternCell]:
    return {f"{w.id}|{c}": pattern_cell(w, c, n, days) for w, c, n, days in items}


PUBLISHED = cells(
    (THIS, f"transition||{HOUSING}>{FOOD}", 10, None),
    (THIS, f"transition||{GP}>{FOOD}", None, None),
    (THIS, f"transition|{WARD}|{HOUSING}>{FOOD}", 5, None),
    (THIS, f"referral||{FOOD}.made", 15, None),
    (THIS, f"referral||{FOOD}.completed", None, None),
    (THIS, "services||one", 40, None),
    (THIS, "services||several", 15, None),
    (THIS, f"median_days||{HOUSING}>{FOOD}", 5, 4),
    (THIS, f"median_days||{GP}>{FOOD}", None, None),
    (THIS, "domain||housing", 20, None),
    (LAST, f"transition||{HOUSING}>{GP}", 5, None),
)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"measure": ["transition"]}, "query: the filters of flows are area, window, from, to"),
        ({"domain": ["housing"]}, "query: the filters of flows are area, window, from, to"),
        ({"window": ["day"]}, "window: must be week or month"),
        ({"area": ["ward-1"]}, "area: must be an ONS code such as E05000001, or place"),
    ],
)
def test_a_bad_flow_filter_is_refused_naming_the_field_and_the_rule(
    query: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(BadFilter) as refused:
        parse_flow_filters(query)
    assert str(refused.value) == message


def test_the_whole_place_unless_areas_are_asked_for() -> None:
    assert parse_flow_filters({}).areas == ("place",)
    assert parse_flow_filters({"area": [WARD]}).areas == (WARD,)


def test_each_window_is_a_matrix_of_published_cells_from_row_to_column() -> None:
    body = flows_answer(PUBLISHED, parse_flow_filters({}))
    assert body["disclosure"]["rule"] == RULE and body["disclosure"]["median_rule"] == MEDIAN_RULE
    assert body["filters"] == {"area": ["place"], "window": None, "from": None, "to": None}
    last, this = body["windows"]  # oldest first
    assert (last["window_start"], last["partners"]) == (LAST.start.isoformat(), [GP, HOUSING])
    assert last["matrix"] == [[0, 0], [5, 0]]  # council-housing (row) > city-gp-federation
    assert this["area"] is None and this["partners"] == [FOOD, GP, HOUSING]
    assert this["matrix"] == [[0, 0, 0], [None, 0, 0], [10, 0, 0]]
    assert this["referrals"] == [
        {"to": FOOD, "made": 15, "accepted": 0, "declined": 0, "completed": None}
    ]
    assert this["services"] == {"one": 40, "several": 15}
    assert this["median_days"] == [
        {"from": GP, "to": FOOD, "referrals": None, "median_days": None},
        {"from": HOUSING, "to": FOOD, "referrals": 5, "median_days": 4},
    ]


def test_an_area_has_its_own_windows_and_the_window_filter_applies() -> None:
    body = flows_answer(PUBLISHED, parse_flow_filters({"area": [WARD]}))
    (ward,) = body["windows"]
    assert (ward["area"], ward["partners"], ward["matrix"]) == (
        WARD,
        [FOOD, HOUSING],
        [[0, 0], [5, 0]],
    )
    assert ward["median_days"] == [] and ward["services"] == {"one": 0, "several": 0}
    assert flows_answer(PUBLISHED, parse_flow_filters({"window": ["month"]}))["windows"] == []


def test_no_count_in_a_flows_answer_is_between_one_and_four() -> None:
    body = flows_answer(PUBLISHED, parse_flow_filters({}))
    counts = [n for w in body["windows"] for row in w["matrix"] for n in row]
    counts += [
        n for w in body["windows"] for r in w["referrals"] for k, n in r.items() if k != "to"
    ]
    counts += [m["referrals"] for w in body["windows"] for m in w["median_days"]]
    assert counts and not any(n is not None and 0 < n < 5 for n in counts)


def test_the_patterns_answer_leaves_the_flows_to_their_own() -> None:
    shown = answer(PUBLISHED, Filters())["cells"]
    assert [(c["measure"], c["combination_code"]) for c in shown] == [("domain", "housing")]


def test_the_stewards_flow_matrix_keeps_suppressed_pairs_apart_and_sums_nothing() -> None:
    body = flows_answer(PUBLISHED, parse_flow_filters({}))
    assert flow_windows(body) == [LAST.start.date().isoformat(), THIS.start.date().isoformat()]
    chart = flow_matrix(body)
    assert chart["window_start"] == THIS.start.date().isoformat()
    assert chart["partners"] == [FOOD, GP, HOUSING]
    assert chart["values"] == [[0, 2, 10]]  # x: to city-food-bank, y: from council-housing
    assert chart["suppressed"] == [[0, 1]]
    assert chart["matrix"] == body["windows"][1]["matrix"]
    assert chart["medians"][1] == {"label": f"{HOUSING} → {FOOD}", "days": 4, "referrals": 5}
    assert chart["rules"] == [RULE, MEDIAN_RULE]
    older = flow_matrix(body, window_start=LAST.start.date().isoformat())
    assert older["values"] == [[0, 1, 5]]
    none = flow_matrix(body, granularity="month")
    assert (none["window_start"], none["values"], none["rules"]) == (None, [], [RULE, MEDIAN_RULE])


def test_the_flows_export_rows_are_the_published_flow_cells_asked_for_with_their_window() -> None:
    rows = flow_rows(PUBLISHED, parse_flow_filters({"window": ["week"]}))
    assert {(r["measure"], r["combination_code"]) for r in rows} == {
        ("transition", f"{HOUSING}>{FOOD}"),
        ("transition", f"{GP}>{FOOD}"),
        ("transition", f"{HOUSING}>{GP}"),
        ("referral", f"{FOOD}.made"),
        ("referral", f"{FOOD}.completed"),
        ("services", "one"),
        ("services", "several"),
        ("median_days", f"{HOUSING}>{FOOD}"),
        ("median_days", f"{GP}>{FOOD}"),
    }  # the whole place's only, no pattern cell, every week
    median = next(
        r for r in rows if r["combination_code"] == f"{HOUSING}>{FOOD}" and r["median_days"]
    )
    assert (median["count"], median["median_days"], median["suppressed"]) == (5, 4, False)
    assert all(r["window_end"] and r["granularity"] == "week" for r in rows)
    ward = flow_rows(PUBLISHED, parse_flow_filters({"area": [WARD]}))
    assert [(r["area_code"], r["count"]) for r in ward] == [(WARD, 5)]
    with pytest.raises(BadFilter):  # format is the export's own, not a filter of GET /v1/flows
        parse_flow_filters({"format": ["csv"]})
    assert parse_flow_filters({"format": ["csv"]}, also=("format",)).areas == ("place",)
