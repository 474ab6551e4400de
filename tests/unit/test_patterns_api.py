"""The patterns API's pure parts: filters refused by field and rule, and the answer built
from published cells (trend against the previous window, late events apart)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hub.disclosure import RULE
from hub.exports import as_csv, as_json
from hub.models import PatternCell
from hub.patterns_api import BadFilter, Filters, answer, export_rows, parse_filters, refusal
from hub.stages.pattern_windows import Window, windows_of
from hub.stages.patterns import pattern_cell
from hub.users import Role, User

WARD = "E05000001"
THIS = windows_of(datetime.now(UTC) - timedelta(days=3))[0]
LAST = THIS.previous()


def cells(*items: tuple[Window, str, int | None]) -> dict[str, PatternCell]:
    return {f"{w.id}|{cell}": pattern_cell(w, cell, count) for w, cell, count in items}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"area": ["E0500000"]}, "area: must be an ONS code such as E05000001, or place"),
        (
            {"domain": ["Housing"]},
            "domain: must be a need domain such as housing (lower case letters)",
        ),
        (
            {"measure": ["people"]},
            "measure: must be one of domain, event_type, co_occurrence, new_or_returning",
        ),
        ({"window": ["day"]}, "window: must be week or month"),
        ({"window": ["week", "month"]}, "window: give it once"),
        ({"from": ["yesterday"]}, "from: must be a date, YYYY-MM-DD"),
        ({"from": ["2026-11-02"], "to": ["2026-11-01"]}, "to: must not be before from"),
        (
            {"nhs": ["9434765919"]},
            "query: the filters of patterns are area, domain, measure, window, from, to",
        ),
    ],
)
def test_a_bad_filter_is_refused_naming_the_field_and_the_rule(
    query: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(BadFilter) as refused:
        parse_filters(query)
    assert str(refused.value) == message


def test_good_filters_are_read_and_stated_back() -> None:
    filters = parse_filters(
        {"area": [WARD, "place"], "domain": ["housing"], "window": ["week"], "from": ["2026-11-01"]}
    )
    assert filters == Filters((WARD, "place"), "housing", None, "week", date(2026, 11, 1))
    assert filters.as_json()["from"] == "2026-11-01"


def test_only_stewards_and_admins_read_patterns() -> None:
    def user(role: Role) -> User:
        return User(id="u", role=role, partner="council-housing", token_sha256="0" * 64)

    assert refusal(user(Role.STEWARD)) is None and refusal(user(Role.ADMIN)) is None
    assert refusal(user(Role.PRACTITIONER)) == "role practitioner may not read the place's patterns"


def test_the_answer_gives_trends_against_the_last_window_and_late_events_apart() -> None:
    published = cells(
        (LAST, f"domain|{WARD}|housing", 10),
        (THIS, f"domain|{WARD}|housing", 15),
        (LAST, "domain||housing", None),
        (THIS, "domain||housing", 20),
        (THIS, "co_occurrence||education+housing", 5),
        (THIS, "new_or_returning||new", 5),
        (THIS, "domain||health", 5),
        (THIS, "late_events||all", None),
    )
    body = answer(published, Filters(domain="housing"))
    assert body["disclosure"] == {"rule": RULE, "threshold": 5, "base": 5}
    shown = {
        (c["window_start"], c["measure"], c["area_code"], c["combination_code"]): c
        for c in body["cells"]
    }
    this = THIS.start.isoformat()
    assert shown[this, "domain", WARD, "housing"] == {
        "granularity": "week",
        "window_start": this,
        "window_end": THIS.end.isoformat(),
        "measure": "domain",
        "area_code": WARD,
        "combination_code": "housing",
        "count": 15,
        "suppressed": False,
        "previous": 10,
        "trend": "up",
    }
    assert shown[this, "domain", None, "housing"]["trend"] is None  # last week's suppressed
    assert (this, "co_occurrence", None, "education+housing") in shown
    assert not any(key[1] == "new_or_returning" or key[3] == "health" for key in shown)
    assert body["late_events"] == [
        {"granularity": "week", "window_start": this, "count": None, "suppressed": True}
    ]
    only_place = answer(
        published, Filters(areas=("place",), measure="domain", from_=THIS.start.date())
    )
    assert [(c["area_code"], c["combination_code"]) for c in only_place["cells"]] == [
        (None, "health"),
        (None, "housing"),
    ]


def test_an_export_has_every_cell_and_late_count_with_its_window_and_the_rule() -> None:
    published = cells(
        (THIS, f"domain|{WARD}|housing", 15),
        (THIS, "domain||housing", None),
        (THIS, "late_events||all", 5),
    )
    rows = export_rows(answer(published, Filters()))
    assert [(r["measure"], r["area_code"], r["count"]) for r in rows] == [
        ("domain", None, None),
        ("domain", WARD, 15),
        ("late_events", None, 5),
    ]
    assert all(r["window_end"] == THIS.end.isoformat() for r in rows)
    text = as_csv(rows, RULE)
    assert text.splitlines()[0].endswith(",disclosure_rule")
    assert as_json(rows, RULE, Filters().as_json())["rows"] == rows
