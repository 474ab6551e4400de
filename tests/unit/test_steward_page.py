"""The stewards' page as HTML (rendered without a worker), who may see it, and the
vendored charting library's pinned checksum."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from importlib.resources import files

from hub.disclosure import BASE, RULE, THRESHOLD
from hub.practitioner_render import render
from hub.steward_charts import co_occurrence, health, trends
from hub.steward_flows import flow_section
from hub.users import Role, User
from tests.unit.test_steward_charts import W1, W2, cell, patterns
from tests.unit.test_steward_flows import ANSWER, FOOD, HOUSING, MEDIAN_RULE

ECHARTS_SHA256 = "b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0"
SMALL = re.compile(r"(?<![\w.:-])[1-4](?![\w.:-])")  # a lone 1-4, not part of a date or code
DAYS = re.compile(r'<span class="days">[^<]*</span>')  # a median of days is not a count


class _Text(HTMLParser):
    """The text a reader sees (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def user(role: Role, partner: str | None = None) -> User:
    return User(id="someone", role=role, partner=partner, token_sha256="0" * 64)


def page(published: bool = True) -> str:
    found = patterns(
        cell(W1, "domain", None, "housing", 15),
        cell(W2, "domain", None, "housing", None),
        cell(W2, "domain", "E05000001", "education", 5),
        cell(W2, "co_occurrence", None, "education+housing", 10),
        cell(W2, "co_occurrence", None, "health+housing", None),
    )
    books = {"council-housing": {"received": 13, "in_view": 10, "held_in_quarantine": 3,
                                 "dead_lettered": 0}}  # fmt: skip
    rows = health(books, {}, 0.0, lambda n: None if n < 5 else 5 * round(n / 5))
    return render(
        "steward.html", title="The place", user=user(Role.STEWARD), csrf="c",
        disclosure={"rule": RULE, "threshold": THRESHOLD, "base": BASE},
        trends=trends(found) if published else [],
        co_occurrence=co_occurrence(found if published else {}), health=rows,
        flows=flow_section(ANSWER if published else {}),
        responses=[], pattern_choices=[], response_kinds=["OUTREACH"],
    )  # fmt: skip


def test_the_page_shows_every_number_in_a_table_and_suppressed_ones_in_words() -> None:
    html = page()
    assert DAYS.findall(html) == ['<span class="days">2 days</span>']
    text = visible(DAYS.sub("", html))
    assert not SMALL.search(text), SMALL.findall(text)
    # two trend charts, heatmap, flow matrix, referrals, health
    assert text.count(f"Disclosure control: {RULE}") == 6
    assert text.count(f"Medians: {MEDIAN_RULE}") == 1
    tables = ("trend-0-table", "trend-1-table", "co-occurrence-table", "health-table")
    tables += ("flow-matrix-table", "flow-referrals-table", "flow-services-table")
    for table in (*tables, "flow-medians-table"):
        assert f'id="{table}"' in html
    assert "<td>15</td>" in html and "<td>10</td>" in html
    # trends 1, heatmap 2, health 1; flows: the matrix 1, a referral step 1
    assert html.count('<span class="suppressed">suppressed</span>') == 1 + 2 + 1 + 1 + 1
    assert 'data-chart="trend"' in html and 'id="co-occurrence"' in html
    assert 'id="flow-matrix"' in html and 'id="flow-referrals"' in html
    assert "No responses have been recorded yet" in text
    assert 'src="/steward/static/echarts.min.js"' in html


def test_the_flows_section_offers_its_windows_and_shows_the_chosen_ones_numbers() -> None:
    html = page()
    assert '<option value="week|2026-11-23" selected>week starting 2026-11-23</option>' in html
    assert '<option value="month|2026-11-01">month starting 2026-11-01</option>' in html
    assert 'name="flows"' in html and 'method="get" action="/steward"' in html
    matrix = html[html.index('id="flow-matrix-table"') : html.index('id="referrals-caption"')]
    assert f'<th scope="row">{HOUSING}</th>' in matrix and "<td>15</td>" in matrix
    referrals = html[html.index('id="flow-referrals-table"') : html.index('id="flow-services')]
    assert f'<th scope="row">{FOOD}</th><td>15</td><td>10</td><td>0</td>' in referrals


def test_before_any_pattern_is_published_the_page_says_so_and_draws_no_pattern_chart() -> None:
    html = page(published=False)
    assert "No weekly patterns have been published yet" in visible(html)
    assert "No flows have been published yet" in visible(html)
    assert 'data-chart="trend"' not in html and 'id="co-occurrence"' not in html
    assert 'id="flow-matrix"' not in html and 'name="flows"' not in html
    assert 'id="health"' in html


def test_the_vendored_echarts_is_the_pinned_build_with_its_licence() -> None:
    vendor = files("hub") / "static" / "vendor"
    built = vendor.joinpath("echarts.min.js").read_bytes()
    assert hashlib.sha256(built).hexdigest() == ECHARTS_SHA256
    readme = vendor.joinpath("README.md").read_text()
    assert "6.1.0" in readme and ECHARTS_SHA256 in readme
    assert "Apache License" in vendor.joinpath("LICENSE").read_text()
    assert vendor.joinpath("NOTICE").is_file() and vendor.joinpath("LICENSE-d3").is_file()
