"""The stewards' page's responses, rendered without a worker from plain dicts: each response's
chart series and table are its evaluation's published cells as they are, its feedback table,
and the form that records one (its fields read into a body, its errors named by field)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.disclosure import BASE, RULE, THRESHOLD, round_count
from hub.practitioner_render import render
from hub.responses import evaluation, feedback_signal
from hub.steward_charts import PLACE_LABEL, pattern_choices, response_chart
from hub.steward_page import KINDS, form_errors, response_form
from hub.users import Role
from tests.unit.test_responses import A, B, C, cell, response, week
from tests.unit.test_steward_page import SMALL, user, visible


def evaluated() -> dict[str, object]:
    cells = [
        cell(0, A, 15), cell(0, B, None), cell(0, None, 30),
        cell(2, A, 10), cell(2, C, 5), cell(2, None, 20),
    ]  # fmt: skip
    useful = {"council-housing": {"USEFUL": 9, "ACTED": 1, "NOT_USEFUL": 0,
                                  "ALREADY_KNOWN": 0, "verdicts": 10}}  # fmt: skip
    signal = feedback_signal(["r-housing"], {}, {"r-housing": useful}, round_count)
    return evaluation(response(), cells, [], signal)


def page(form: dict[str, object] | None = None) -> str:
    found = evaluated()
    values = {
        "title": "The place", "user": user(Role.STEWARD), "csrf": "the-csrf",
        "disclosure": {"rule": RULE, "threshold": THRESHOLD, "base": BASE},
        "trends": [], "co_occurrence": {"domains": []}, "health": [], "flows": {"choices": []},
        "responses": [{"response": found["response"], "chart": response_chart(found),
                       "feedback": found["feedback"]}],
        "pattern_choices": pattern_choices({"cells": [cell(0, A, 15)]}),
        "response_kinds": KINDS,
    }  # fmt: skip
    if form is not None:
        values["form"] = form
    return render("steward.html", **values)


def test_a_responses_chart_is_its_areas_then_comparison_areas_then_the_place_as_published() -> None:
    chart = response_chart(evaluated())
    assert chart["windows"] == [week(0)[0], week(2)[0]]
    assert chart["from_window"] == week(2)[0] and chart["phases"] == ["before", "during"]
    assert [(line["name"], line["role"], line["values"]) for line in chart["lines"]] == [
        (f"{A} (with the response)", "response", [15, 10]),
        (f"{B} (comparison)", "comparison", [None, 0]),
        (f"{C} (comparison)", "comparison", [0, 5]),
        (PLACE_LABEL, "place", [30, 20]),
    ]
    assert chart["title"] == "Housing advice at the school gate"
    assert chart["pattern"] == "domain housing by week"


def test_the_page_lists_a_response_with_its_chart_table_feedback_and_the_form() -> None:
    html = page()
    text = visible(html)
    assert not SMALL.search(text), SMALL.findall(text)
    assert 'data-chart="response"' in html and 'id="response-chart-0"' in html
    assert 'id="response-r-1"' in html and "Housing advice at the school gate" in text
    assert text.count(f"Disclosure control: {RULE}") == 2  # health and the response
    table = html[html.index('id="response-0-table"') : html.index('id="response-0-feedback"')]
    assert table.count("<tr>") == 3  # a header and two windows
    assert '<td>before</td><td>15</td><td><span class="suppressed">suppressed</span></td>' in table
    assert "<td>during</td><td>10</td><td>0</td><td>5</td><td>20</td>" in table
    feedback = html[html.index('id="response-0-feedback"') :]
    assert (
        '<th scope="row">r-housing</th>' in feedback
        and "<td>10</td><td>10</td><td>1.0</td>" in feedback
    )
    assert 'name="csrf" value="the-csrf"' in html and 'action="/steward/responses"' in html
    assert '<option value="week|domain|housing">domain housing by week</option>' in html
    assert "No responses have been recorded yet" not in text


def test_a_refused_form_comes_back_with_its_values_and_each_fields_rule() -> None:
    fields = {"title": "Drop-in", "areas": "E05000001, nowhere", "pattern": "week|domain|x.y"}
    with pytest.raises(ValidationError) as refused:
        response_form(fields)
    errors = form_errors(refused.value)
    assert {e["field"] for e in errors} == {"areas", "kind", "from_date", "pattern"}
    assert all("nowhere" not in e["message"] for e in errors)
    html = page({"errors": errors, "values": fields})
    assert "The response was not recorded" in html and 'value="Drop-in"' in html
    assert 'value="E05000001, nowhere"' in html


def test_the_forms_fields_make_the_apis_body() -> None:
    body = response_form(
        {
            "title": " Drop-in at the library ", "kind": "CO_LOCATION",
            "areas": "E05000001,E05000002  E05000003", "from_date": "2026-10-05",
            "until_date": "", "pattern": "month|co_occurrence|education+housing",
            "csrf": "ignored",
        }
    )  # fmt: skip
    assert body.title == "Drop-in at the library" and body.area_codes == [A, B, C]
    assert (body.granularity, body.measure, body.combination_code) == (
        "month",
        "co_occurrence",
        "education+housing",
    )
    assert body.until_date is None and body.description == ""
