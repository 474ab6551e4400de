"""The learning cycle's rules with plain dicts: a response's body and amendments, the split of
windows at its first day, the comparison areas, and that the evaluation only re-arranges
published cells (suppressed ones stay suppressed, nothing is summed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hub.alerts import Condition
from hub.disclosure import round_count
from hub.models import CollectiveResponse, ResponseStatus
from hub.responses import (
    AmendBody,
    ResponseBody,
    amended,
    comparison_areas,
    evaluation,
    event_types_read,
    feedback_signal,
    latest,
    pattern_domains,
    phases,
    recorded,
    rules_touching,
)
from hub.serde import validation_errors

A, B, C, D = "E05000001", "E05000002", "E05000003", "E05000004"
MONDAY = date(2026, 10, 5)  # any Monday: the windows below are ISO weeks from it
AT = datetime(2026, 10, 20, 9, tzinfo=UTC)
BODY: dict[str, Any] = {
    "title": "Housing advice at the school gate",
    "kind": "OUTREACH",
    "area_codes": [A],
    "from_date": (MONDAY + timedelta(days=16)).isoformat(),  # Wednesday of the third week
    "granularity": "week",
    "measure": "domain",
    "combination_code": "housing",
}


def week(n: int) -> tuple[str, str]:
    start = MONDAY + timedelta(weeks=n)
    return start.isoformat(), (start + timedelta(days=7)).isoformat()


def cell(
    n: int, area: str | None, count: int | None, combination: str = "housing"
) -> dict[str, Any]:
    start, end = week(n)
    return {
        "granularity": "week",
        "window_start": f"{start}T00:00:00+00:00",
        "window_end": f"{end}T00:00:00+00:00",
        "measure": "domain",
        "area_code": area,
        "combination_code": combination,
        "count": count,
        "suppressed": count is None,
    }


def response(**changes: Any) -> CollectiveResponse:
    made = recorded(ResponseBody.model_validate(BODY), "r-1", "steward-1", AT)
    return made.model_copy(update=changes)


NO_FEEDBACK: dict[str, Any] = {"which": "", "rules": []}


def test_windows_split_at_the_first_day_and_after_the_last() -> None:
    first = MONDAY + timedelta(days=16)  # week 2's Wednesday
    spans = [week(n) for n in range(5)]
    assert phases(spans, first, None) == ["before", "before", "during", "after", "after"]
    assert phases(spans, MONDAY + timedelta(weeks=2), None)[1:3] == ["before", "after"]
    last = MONDAY + timedelta(weeks=3, days=6)  # week 3's Sunday
    assert phases(spans, first, last) == ["before", "before", "during", "after", "ended"]


def test_the_evaluation_sets_published_cells_side_by_side_and_sums_nothing() -> None:
    cells = [
        cell(0, A, 15), cell(0, B, 10), cell(0, C, None), cell(0, None, 30),
        cell(1, A, 20), cell(1, B, None), cell(1, None, None),
        cell(2, A, 10), cell(2, C, 5), cell(2, None, 20),
        cell(3, B, 5), cell(3, None, 10),
        cell(3, A, 50, combination="education"),  # another pattern: left out
    ]  # fmt: skip
    found = evaluation(response(), cells, [], NO_FEEDBACK)
    assert found["windows"] == [week(n)[0] for n in range(4)]
    assert found["phases"] == ["before", "before", "during", "after"]
    assert found["from_window"] == week(2)[0]
    assert found["areas"] == [{"area_code": A, "values": [15, 20, 10, 0]}]
    assert found["comparison"] == [
        {"area_code": B, "values": [10, None, 0, 5]},
        {"area_code": C, "values": [None, 0, 5, 0]},
    ]
    # The whole place is its own published cell (suppressed in week 1 although A's 20 is
    # published): never the areas' sum.
    assert found["place"] == {"area_code": None, "values": [30, None, 20, 10]}
    published = {c["count"] for c in cells[:-1]}
    shown = [
        v for s in [*found["areas"], *found["comparison"], found["place"]] for v in s["values"]
    ]
    assert set(shown) - {0} <= published - {None} | {None}
    assert found["disclosure"]["threshold"] == 5 and found["disclosure"]["rule"]
    assert found["response"]["response_id"] == "r-1" and found["response"]["status"] == "ACTIVE"


def test_comparison_areas_leave_out_areas_with_another_live_response_to_the_pattern() -> None:
    mine = response()
    cells = [cell(0, area, 10) for area in (A, B, C, D)] + [cell(0, None, 40)]
    others = [
        mine,
        response(response_id="r-2", area_codes=[B]),  # same pattern, active: not compared
        response(response_id="r-3", area_codes=[C], status=ResponseStatus.WITHDRAWN),
        response(response_id="r-4", area_codes=[D], combination_code="education"),
    ]
    assert comparison_areas(mine, cells, others) == [C, D]
    ended = response(response_id="r-2", area_codes=[B], status=ResponseStatus.ENDED)
    assert comparison_areas(mine, cells, [ended]) == [C, D]
    assert comparison_areas(mine, cells, []) == [B, C, D]


def test_an_evaluation_with_no_published_cells_has_no_windows() -> None:
    found = evaluation(response(), [], [], NO_FEEDBACK)
    assert found["windows"] == [] and found["from_window"] is None
    assert found["areas"] == [{"area_code": A, "values": []}] and found["comparison"] == []


@pytest.mark.parametrize(
    ("change", "pointer", "rule"),
    [
        ({"measure": "co_occurrence"}, "/combination_code", "two need domains"),
        ({"combination_code": "housing+education", "measure": "co_occurrence"},
         "/combination_code", "alphabetical"),
        ({"measure": "event_type"}, "/combination_code", "an event type"),
        ({"until_date": MONDAY.isoformat()}, "/until_date", "must not be before from_date"),
        ({"area_codes": [A, A]}, "/area_codes", "repeated"),
        ({"area_codes": []}, "/area_codes", "at least 1"),
        ({"area_codes": ["Northfield"]}, "/area_codes/0", "pattern"),
        ({"title": "Call jo@example.org"}, "/title", "email"),
        ({"title": "Follow up 943 476 5919"}, "/title", "national identifier"),
        ({"description": "two\nlines"}, "/description", "one line"),
        ({"title": "ab"}, "/title", "at least 3"),
        ({"kind": "party"}, "/kind", "OUTREACH"),
        ({"recorded_by": "someone"}, "/recorded_by", "Extra inputs"),
    ],
)  # fmt: skip
def test_a_bad_body_is_refused_naming_the_field_and_the_rule(
    change: dict[str, Any], pointer: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        ResponseBody.model_validate({**BODY, **change})
    errors = validation_errors(refused.value)
    assert [p for p, _ in errors] == [pointer], errors
    assert rule in errors[0][1]
    refused_value = change.get(pointer.split("/")[1])
    assert refused_value is None or str(refused_value) not in errors[0][1]  # never echoed


@pytest.mark.parametrize(
    ("change", "pointer"),
    [({"area_codes": [A, A]}, "/area_codes"), ({"until_date": MONDAY}, "/until_date")],
)
def test_the_kept_record_refuses_what_the_body_does(change: dict[str, Any], pointer: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CollectiveResponse.model_validate(response().model_dump() | change)
    assert [p for p, _ in validation_errors(refused.value)] == [pointer]


def test_amendments_keep_the_history_and_a_withdrawn_response_stays_withdrawn() -> None:
    first = response()
    later = AT + timedelta(days=30)
    ended = amended(first, AmendBody(status=ResponseStatus.ENDED, until_date=date(2026, 11, 1)),
                    "steward-2", later)  # fmt: skip
    assert (ended.status, ended.until_date) == (ResponseStatus.ENDED, date(2026, 11, 1))
    assert [(c.changed_by, c.status) for c in ended.changes] == [("steward-2", "ENDED")]
    assert (ended.title, ended.area_codes, ended.from_date) == (
        first.title,
        first.area_codes,
        first.from_date,
    )
    gone = amended(ended, AmendBody(status=ResponseStatus.WITHDRAWN), "steward-1", later)
    assert gone.until_date == date(2026, 11, 1) and len(gone.changes) == 2
    with pytest.raises(ValueError, match=r"^status: a withdrawn response stays withdrawn$"):
        amended(gone, AmendBody(status=ResponseStatus.ACTIVE), "steward-1", later)
    with pytest.raises(ValueError, match=r"^until_date: "):
        amended(first, AmendBody(status=ResponseStatus.ENDED, until_date=MONDAY), "s", later)
    assert latest([first, response(response_id="r-2"), ended, gone]) == {
        "r-1": gone,
        "r-2": response(response_id="r-2"),
    }


def test_the_rules_shown_are_those_reading_the_patterns_domains() -> None:
    condition = Condition.model_validate(
        {"all_of": [
            {"count": {"event_types": ["housing.arrears"], "at_least": 2}},
            {"sequence": {"first": ["education.*"], "then": ["social_care.plan_closed"],
                          "within_days": 30, "unless_between": ["health.*"]}},
        ]}
    )  # fmt: skip
    assert sorted(event_types_read(condition)) == [
        "education.*",
        "housing.arrears",
        "social_care.plan_closed",
    ]
    rules = {"r-housing": ["housing.arrears"], "r-any": ["*"], "r-health": ["health.*"]}
    assert pattern_domains("co_occurrence", "education+housing") == {"education", "housing"}
    assert pattern_domains("event_type", "housing.arrears") == {"housing"}
    assert rules_touching(rules, {"housing"}) == ["r-any", "r-housing"]
    assert rules_touching(rules, {"police"}) == ["r-any"]
    assert rules_touching(rules, pattern_domains("new_or_returning", "new")) == sorted(rules)


def outcomes(useful: int, acted: int, other: int) -> dict[str, int]:
    return {"USEFUL": useful, "ACTED": acted, "NOT_USEFUL": other, "ALREADY_KNOWN": 0,
            "verdicts": useful + acted + other}  # fmt: skip


def test_feedback_is_counted_across_partners_then_put_through_the_rule() -> None:
    before = {"r-housing": {"city-health": outcomes(1, 1, 1), "council-housing": outcomes(2, 0, 4)}}
    after = {"r-housing": {"council-housing": outcomes(3, 1, 0)}, "r-other": {}}
    signal = feedback_signal(["r-housing", "r-quiet"], before, after, round_count)
    assert signal["rules"] == [
        {
            "rule": "r-housing",
            "before": {"verdicts": 10, "useful": None, "share_useful": None},  # 9; 4 useful
            "after": {"verdicts": None, "useful": None, "share_useful": None},  # 4; 4
        },
        {
            "rule": "r-quiet",
            "before": {"verdicts": 0, "useful": 0, "share_useful": None},
            "after": {"verdicts": 0, "useful": 0, "share_useful": None},
        },
    ]
    many = {"r-housing": {"council-housing": outcomes(6, 2, 12)}}
    side = feedback_signal(["r-housing"], many, {}, round_count)["rules"][0]["before"]
    assert side == {"verdicts": 20, "useful": 10, "share_useful": 0.5}
    assert signal["which"]
