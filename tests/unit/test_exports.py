"""Exports: the rule and the window travel in the file, and no unsafe count gets out."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from hub.disclosure import RULE, control
from hub.exports import as_csv, as_json

_WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; only the format matters here
_WEEK_END = _WEEK_START + timedelta(days=7)


def _row(area: str | None, count: int | None, **extra: object) -> dict[str, object]:
    return {
        "window_start": _WEEK_START,
        "window_end": _WEEK_END,
        "area_code": area,
        "combination_code": "housing",
        "count": count,
        "suppressed": count is None,
        **extra,
    }


ROWS = [_row("E05000001", 15), _row("E05000002", None), _row(None, 20)]


def test_the_csv_is_one_table_with_the_window_and_the_rule_on_every_row() -> None:
    text = as_csv(ROWS, RULE)
    lines = text.splitlines()
    assert lines[0].startswith("window_start,window_end,")  # a header first, no comments
    read = list(csv.DictReader(io.StringIO(text)))
    assert list(read[0]) == [
        "window_start",
        "window_end",
        "area_code",
        "combination_code",
        "count",
        "suppressed",
        "disclosure_rule",
    ]
    assert [row["disclosure_rule"] for row in read] == [RULE] * 3  # commas in it, quoted
    assert {row["window_start"] for row in read} == {_WEEK_START.isoformat()}
    assert {row["window_end"] for row in read} == {_WEEK_END.isoformat()}
    assert [(row["area_code"], row["count"], row["suppressed"]) for row in read] == [
        ("E05000001", "15", "false"),
        ("E05000002", "", "true"),
        ("", "20", "false"),
    ]


def test_the_csv_has_every_column_any_row_has() -> None:
    rows = [_row("E05000001", 15), _row("E05000002", 10, measure="domain")]
    read = list(csv.DictReader(io.StringIO(as_csv(rows, RULE))))
    assert list(read[0])[-2:] == ["measure", "disclosure_rule"]
    assert [row["measure"] for row in read] == ["", "domain"]


def test_the_json_states_the_rule_its_numbers_and_the_filters() -> None:
    filters = {"area": "E05000001", "domain": "housing", "window": _WEEK_START}
    exported = as_json(ROWS, RULE, filters)
    assert list(exported) == ["disclosure", "filters", "rows"]
    assert exported["disclosure"] == {"rule": RULE, "threshold": 5, "base": 5}
    assert exported["filters"] == {**filters, "window": _WEEK_START.isoformat()}
    decoded = json.loads(json.dumps(exported))  # nothing a JSON encoder cannot write
    assert decoded["rows"][1] == {
        "window_start": _WEEK_START.isoformat(),
        "window_end": _WEEK_END.isoformat(),
        "area_code": "E05000002",
        "combination_code": "housing",
        "count": None,
        "suppressed": True,
    }


def test_controlled_counts_export_as_they_were_published() -> None:
    counts = {"E05000001": 12, "E05000002": 3, "E05000003": 31, "place": 46}
    margins = [("place", ["E05000001", "E05000002", "E05000003"])]
    rows = [_row(area, count) for area, count in control(counts, margins).items()]
    exported = as_json(rows, RULE, {})["rows"]
    assert isinstance(exported, list)
    assert [(row["area_code"], row["count"]) for row in exported] == [
        ("E05000001", None),
        ("E05000002", None),
        ("E05000003", 30),
        ("place", 45),
    ]
    assert len(as_csv(rows, RULE).splitlines()) == 5


REFUSED = [
    (_row("E05000001", 3), "row 1: count: counts under 5 are suppressed, never exported"),
    (_row("E05000001", 12), "row 1: count: counts are rounded to a multiple of 5"),
    (_row("E05000001", -7), "row 1: count: a count of people is never negative"),
    (_row("E05000001", 15, suppressed=True), "row 1: count: a suppressed row carries no count"),
    (_row("E05000001", None, suppressed=False), "row 1: count: a row without a count must"),
    (_row("E05000001", 15, suppressed="no"), "row 1: suppressed: must be true or false"),
    (_row("E05000001", True), "row 1: count: must be a whole number"),
    (_row("E05000001", "15"), "row 1: count: must be a whole number"),  # type: ignore[arg-type]
    ({"area_code": "E05000001", "people": 3}, "row 1: count: every exported row has a count"),
]


@pytest.mark.parametrize(("row", "message"), REFUSED)
@pytest.mark.parametrize("export", ["csv", "json"])
def test_an_unsafe_row_refuses_the_whole_export_naming_field_and_rule(
    export: str, row: dict[str, object], message: str
) -> None:
    rows = [_row("E05000002", 10), row]
    with pytest.raises(ValueError, match=message) as refused:
        as_csv(rows, RULE) if export == "csv" else as_json(rows, RULE, {})
    text = str(refused.value)
    assert "E05000001" not in text  # never the row's data
    for value in ("3", "12", "7", "15"):
        assert value not in text


def test_an_export_without_its_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="rule: an export states the disclosure rule"):
        as_csv(ROWS, " ")
    with pytest.raises(ValueError, match="rule: an export states the disclosure rule"):
        as_json(ROWS, "", {})


def test_an_empty_cell_may_be_exported_as_0() -> None:
    assert as_json([_row("E05000001", 0)], RULE, {})["rows"] == [
        {
            **_row("E05000001", 0),
            "window_start": _WEEK_START.isoformat(),
            "window_end": _WEEK_END.isoformat(),
        }
    ]
