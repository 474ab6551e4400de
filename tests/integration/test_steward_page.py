"""The stewards' page end to end: Debian's Chromium, headless, through Selenium, against
a real worker on the real broker. A practitioner is refused in words; a steward signs in
and the page draws its charts with the vendored ECharts from numbers that are already
disclosure-controlled: the charts' series (read back from ECharts) are the API's numbers
put through the rule, no count from 1 to 4 shows anywhere, and every chart has a table.
Flows (``tests/integration/test_flows.py``'s small place: 15 people from the council to the
food bank) are drawn as ``hub.steward_flows`` turns ``GET /v1/flows`` for the window chosen
on the page. Screenshots are kept at ``.state/artefacts/steward.png`` and, of the flows
section, ``steward-flows.png``."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from connectors import EventDraft, Publisher
from connectors.simulate import synthetic_nhs_number
from hub.disclosure import RULE, round_count
from hub.models import BasisKind, LawfulBasis, Payload
from hub.steward_charts import HEALTH_BOOKS, co_occurrence, response_chart, trends
from hub.steward_flows import flow_section
from tests.integration import test_flows
from tests.integration.conftest import (
    TEST_AGREEMENT_ID,
    TEST_EVENT_TYPES,
    TEST_PARTNERS,
    WorkerFactory,
    write_agreement,
)
from tests.integration.helpers import WorkerProcess
from tests.integration.test_alerts import HOUSING_PRACTITIONER
from tests.integration.test_practitioner_page import (  # noqa: F401 (browser: a fixture)
    ARTEFACTS,
    WAIT_S,
    browser,
    screenshot,
    wait_for,
)
from tests.integration.test_stream_core import HEALTH, HOUSING, SCHOOL, wait_until

STEWARD = "demo-steward"
SMALL = re.compile(r"(?<![\w.:-])[1-4](?![\w.:-])")  # a lone 1-4, not part of a date or code
PARTNERS = ("city-health", "council-housing", "northfield-school")
AREA_A, AREA_B = "E05000001", "E05000002"
SHARERS: dict[str, tuple[str, Payload]] = {  # domain: (the partner that shares it, an event)
    "housing": ("council-housing", HOUSING),
    "education": ("northfield-school", SCHOOL),
    "health": ("city-health", HEALTH),
}
# A small place in one week, people by area and needs: in A, 12 with housing needs, 7 of
# them with education too; in B, 8 with health needs, 6 of them with housing too.
PLACE = [(AREA_A, ("housing", "education"))] * 7 + [(AREA_A, ("housing",))] * 5
PLACE += [(AREA_B, ("health", "housing"))] * 6 + [(AREA_B, ("health",))] * 2
PLACE_WEEK_DAY = (datetime.now(UTC) - timedelta(days=14)).date()  # when PLACE's events are
RESPONSE_TITLE = "Housing advice at the school gate"
FOOD_FROM, FOOD = test_flows.HOUSING, test_flows.FOOD  # the flows' busiest transition
FLOWS_WEEK = test_flows.week_of(test_flows.LAST_MONDAY).isoformat()  # the flows' referrals


@pytest.fixture
def agreements_dir(tmp_path: Path) -> Path:
    """The tests' agreement, with the food bank sharing too and referrals shared (the flows)."""
    partners = (*TEST_PARTNERS, "city-food-bank")
    event_types = (*TEST_EVENT_TYPES, "community.*", "referral.*")
    return write_agreement(tmp_path / "agreements", partners, event_types)


def publish_flows(worker: WorkerProcess) -> None:
    """``test_flows``' small place (its own people, last week and this) and wait until the
    place's flows in ``FLOWS_WEEK`` are what that test reckons from its inputs."""
    sent = test_flows.place()
    want = {c: v for c, v in test_flows.expected(sent).items() if c[1] == FLOWS_WEEK}
    assert want["week", FLOWS_WEEK, "transition", None, f"{FOOD_FROM}>{FOOD}"] == (15, None)
    test_flows.publish(worker.settings, sent)

    def got() -> dict[Any, Any]:
        return {c: v for c, v in test_flows.answered(worker).items() if c[1] == FLOWS_WEEK}

    def differences() -> str:
        found = got()
        wrong = sorted(
            (k for k in want.keys() | found.keys() if want.get(k) != found.get(k)), key=str
        )
        return f"the flows of week {FLOWS_WEEK}: {len(wrong)} cells differ, e.g. {wrong[:3]}"

    wait_until(lambda: got() == want, timeout_s=WAIT_S, describe=differences)


def publish_small_place(worker: WorkerProcess) -> int:
    """``PLACE``'s events, a fortnight ago, under the test agreement; how many."""
    rng = random.Random(13)
    when = datetime.combine(PLACE_WEEK_DAY, datetime.now(UTC).time(), UTC).replace(microsecond=0)
    basis = LawfulBasis(
        kind=BasisKind.AGREEMENT, agreement_id=TEST_AGREEMENT_ID, purpose="early-help"
    )
    by_partner: dict[str, list[EventDraft]] = {}
    for n, (area, domains) in enumerate(PLACE):
        nhs = synthetic_nhs_number(rng)
        for domain in domains:
            partner, payload = SHARERS[domain]
            by_partner.setdefault(partner, []).append(
                EventDraft(
                    source_ref=f"REF-{n}", identifiers={"nhs": nhs}, basis=basis,
                    payload=payload, occurred_at=when, area_code=area,
                )
            )  # fmt: skip
    for partner, drafts in by_partner.items():
        with Publisher(partner, "sim", worker.settings) as publisher:
            for event in drafts:
                publisher.publish(event)
    return sum(len(drafts) for drafts in by_partner.values())


def record_a_response(driver: WebDriver, area: str, first_day: date) -> None:
    """Fill in and send the page's form for a response to the weekly housing pattern."""
    driver.find_element(By.ID, "title").send_keys(RESPONSE_TITLE)
    driver.find_element(By.ID, "description").send_keys("Drop-in housing advice sessions.")
    Select(driver.find_element(By.ID, "kind")).select_by_value("OUTREACH")
    driver.find_element(By.ID, "areas").send_keys(area)
    # A date field's typing order depends on the browser's locale: set its value instead.
    driver.execute_script(
        "document.getElementById('from_date').value = arguments[0];", first_day.isoformat()
    )
    Select(driver.find_element(By.ID, "pattern")).select_by_value("week|domain|housing")
    driver.find_element(By.CSS_SELECTOR, "form.response-form button[type=submit]").click()


def sign_in(driver: WebDriver, worker: WorkerProcess, token: str) -> None:
    driver.get(f"{worker.url}/steward/sign-in")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()


def option(driver: WebDriver, chart_id: str) -> dict[str, Any]:
    """The option ECharts drew the chart ``chart_id`` with (its instance's own copy)."""
    found: dict[str, Any] = driver.execute_script(
        "var chart = echarts.getInstanceByDom(document.getElementById(arguments[0]));"
        "return chart ? JSON.parse(JSON.stringify(chart.getOption())) : null;",
        chart_id,
    )
    assert found is not None, f"no chart drawn in #{chart_id}"
    return found


def disclosed(count: int) -> int | None:
    return 0 if count == 0 else round_count(count)


def test_a_steward_sees_the_places_charts_with_only_disclosure_controlled_numbers(
    make_worker: WorkerFactory,
    browser: WebDriver,  # noqa: F811
) -> None:
    worker = make_worker()
    published = publish_small_place(worker)

    def settled(reply: Any) -> bool:
        partners = reply.json()["partners"] if reply.ok else {}
        received = sum(partners[p]["received"] for p in PARTNERS)
        return received == published and all(partners[p]["balanced"] for p in PARTNERS)

    worker.wait_for("/v1/partners/status", settled, WAIT_S, STEWARD, "the place's events settled")
    books = worker.get("/v1/partners/status", token=STEWARD).json()["partners"]

    def counted(reply: Any) -> bool:
        """Every domain of the place has its weekly cell: the patterns stages took in all
        the events (the page, drawn later, must show what this read shows)."""
        cells = reply.json()["cells"] if reply.ok else []
        place = {c["combination_code"] for c in cells if c["area_code"] is None}
        return {domain for _, domains in PLACE for domain in domains} <= place

    path = "/v1/patterns?window=week"
    worker.wait_for(path, counted, WAIT_S, STEWARD, "the place's weekly cells")
    weekly = worker.get(path, token=STEWARD).json()
    for _ in range(WAIT_S):  # and no cell still moving: two reads a second apart agree
        time.sleep(1)
        weekly, before = worker.get(path, token=STEWARD).json(), weekly
        if weekly == before:
            break

    # No session: the sign-in form (the data, 401). A practitioner's token is real but
    # refused, in words.
    assert requests.get(f"{worker.url}/steward/data", timeout=10).status_code == 401
    browser.get(f"{worker.url}/steward")
    assert browser.current_url.endswith("/steward/sign-in")
    sign_in(browser, worker, HOUSING_PRACTITIONER)
    refused = wait_for(browser, "the role error", "[role=alert]").text
    assert "for system stewards" in refused and "role practitioner" in refused
    assert browser.get_cookie("placehub_steward_session") is None
    browser.get_log("browser")  # the refusal's 403; the page's own log is read below

    sign_in(browser, worker, STEWARD)
    wait_for(browser, "the charts drawn", "body[data-charts=drawn]")
    cookie = browser.get_cookie("placehub_steward_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # System health: one bar series per book, one bar per partner, each the API's books
    # put through the disclosure rule.
    drawn = option(browser, "health")
    partners = sorted(books)
    assert drawn["xAxis"][0]["data"] == partners
    expected = {book: [disclosed(books[p][book]) for p in partners] for book in HEALTH_BOOKS}
    assert [s["data"] for s in drawn["series"]] == list(expected.values())
    assert {s["type"] for s in drawn["series"]} == {"bar"}
    assert expected["received"][partners.index("council-housing")] == 20  # 18 records
    table = browser.find_element(By.ID, "health-table").text
    assert all(p in table for p in partners) and "20" in table

    # Trends: one chart per area (the place first), one line per domain, each value the
    # API's published cell (or None, a gap, where suppressed).
    charts = trends(weekly)
    assert [c["area_code"] for c in charts] == [None, AREA_A, AREA_B]
    for n, chart in enumerate(charts):
        drawn = option(browser, f"trend-{n}")
        assert drawn["xAxis"][0]["data"] == chart["windows"]
        assert [(s["name"], s["data"]) for s in drawn["series"]] == [
            (line["name"], line["values"]) for line in chart["lines"]
        ]
    place = {line["name"]: line["values"][-1] for line in charts[0]["lines"]}
    assert place["housing"] == 20  # 18 people, not suppressed: the charts are not all gaps

    # Needs that come together: the heatmap's cells are the API's published pairs.
    pairs = co_occurrence(weekly)
    drawn = option(browser, "co-occurrence")
    assert drawn["xAxis"][0]["data"] == drawn["yAxis"][0]["data"] == pairs["domains"]
    assert drawn["series"][0]["data"] == pairs["values"] and pairs["values"]
    assert [v[:2] for v in drawn["series"][1]["data"]] == pairs["suppressed"]

    # No flow between partners yet: the place's people met their services at one moment.
    assert not browser.find_elements(By.ID, "flow-matrix")

    # A response recorded through the page's form: back on the page, its chart's series
    # are its evaluation from the API (area A, comparison area B, the place, as published),
    # with the marker at the week holding its first day.
    assert (
        "No responses have been recorded yet" in browser.find_element(By.ID, "responses-none").text
    )
    record_a_response(browser, AREA_A, PLACE_WEEK_DAY)
    wait_for(
        browser, "the charts drawn with the response", "body[data-charts=drawn] #response-chart-0"
    )
    listed = worker.get("/v1/responses", token=STEWARD).json()["responses"]
    assert [r["title"] for r in listed] == [RESPONSE_TITLE]
    evaluation = worker.get(f"/v1/responses/{listed[0]['response_id']}", token=STEWARD).json()
    chart = response_chart(evaluation)
    assert [(line["name"], line["values"]) for line in chart["lines"]] == [
        (f"{AREA_A} (with the response)", [10]),  # 12 people with housing needs
        (f"{AREA_B} (comparison)", [5]),  # 6
        ("Whole place", [20]),  # 18: its own cell, not 10 + 5
    ]
    drawn = option(browser, "response-chart-0")
    assert drawn["xAxis"][0]["data"] == chart["windows"] == [chart["from_window"]]
    assert [(s["name"], s["data"]) for s in drawn["series"]] == [
        (line["name"], line["values"]) for line in chart["lines"]
    ]
    assert [m["xAxis"] for m in drawn["series"][0]["markLine"]["data"]] == [chart["from_window"]]
    assert (
        RESPONSE_TITLE
        in browser.find_element(By.ID, "responses-heading").find_element(By.XPATH, "..").text
    )

    # Flows: the window chosen on the page is drawn as hub.steward_flows turns GET /v1/flows
    # (15 people from the council to the food bank, as published; suppressed pairs apart).
    publish_flows(worker)
    browser.get(f"{worker.url}/steward")
    Select(browser.find_element(By.ID, "flows-window")).select_by_value(f"week|{FLOWS_WEEK}")
    browser.find_element(By.CSS_SELECTOR, "form.flows-window button[type=submit]").click()
    wait_for(browser, "the flows drawn", "body[data-charts=drawn] #flow-matrix")
    assert browser.current_url.endswith(f"flows=week%7C{FLOWS_WEEK}")
    flows = flow_section(worker.get("/v1/flows", token=STEWARD).json(), f"week|{FLOWS_WEEK}")
    assert flows["window_start"] == FLOWS_WEEK
    partners = flows["partners"]
    x, y = partners.index(FOOD), partners.index(FOOD_FROM)
    assert [x, y, 15] in flows["values"]
    drawn = option(browser, "flow-matrix")
    assert drawn["xAxis"][0]["data"] == drawn["yAxis"][0]["data"] == partners
    assert drawn["series"][0]["data"] == flows["values"]
    assert [v[:2] for v in drawn["series"][1]["data"]] == flows["suppressed"]
    words = browser.execute_script(
        "return Array.from(document.querySelectorAll('#flow-matrix svg text'))"
        ".map(function (t) { return t.textContent; });"
    )  # a suppressed pair is drawn, in words (the hospital's 3 to the council here)
    assert flows["suppressed"] and words.count("suppressed") == len(flows["suppressed"]), words
    drawn = option(browser, "flow-referrals")
    assert drawn["xAxis"][0]["data"] == flows["receivers"] == [FOOD]
    assert [(s["name"], s["data"]) for s in drawn["series"]] == [
        (step["name"], step["values"]) for step in flows["referral_steps"]
    ]
    assert flows["referral_steps"][0] == {"name": "made", "values": [15]}
    (median,) = flows["medians"]
    days = [d.text for d in browser.find_elements(By.CSS_SELECTOR, "#flow-medians-table .days")]
    assert median["referrals"] == 15 and days == [
        f"{median['days']} day{'' if median['days'] == 1 else 's'}"
    ]
    row = f"//table[@id='flow-matrix-table']//tr[th='{FOOD_FROM}']/td"
    assert browser.find_elements(By.XPATH, row)[x].text == "15"
    assert (
        "Medians: "
        in browser.find_element(By.ID, "flows-heading").find_element(By.XPATH, "..").text
    )

    # Every chart states the rule; no count from 1 to 4 anywhere on the page or in a chart
    # (a median is days, not a count: checked above and left out here).
    rules = browser.find_elements(By.CSS_SELECTOR, "figure .rule")
    assert rules and all(RULE in r.text for r in rules)
    text = browser.find_element(By.TAG_NAME, "body").text
    for median_days in days:
        text = text.replace(median_days, "")
    assert not SMALL.search(text), SMALL.findall(text)
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('.chart svg text'))"
        ".map(function (t) { return t.textContent; });"
    )
    assert "records" in labels and "people" in labels and "0" in labels, labels
    assert not [label for label in labels if SMALL.search(label)], labels
    values = [v for c in charts for line in c["lines"] for v in line["values"]]
    values += [v[2] for v in pairs["values"]] + [v for b in expected.values() for v in b]
    values += [v[2] for v in flows["values"]] + [
        v for s in flows["referral_steps"] for v in s["values"]
    ]
    assert all(v is None or v == 0 or (v >= 5 and v % 5 == 0) for v in values), values
    # Each chart is reachable from the keyboard and named for a screen reader.
    for chart in browser.find_elements(By.CSS_SELECTOR, ".chart"):
        assert chart.get_attribute("tabindex") == "0" and chart.get_attribute("aria-label")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # a script refused by the page's CSP would show here
    height = browser.execute_script("return document.documentElement.scrollHeight;")
    browser.set_window_size(1280, height)  # the whole page in the screenshot
    screenshot(browser, "steward")
    section = browser.find_element(By.ID, "flows-heading").find_element(By.XPATH, "..")
    assert section.screenshot(str(ARTEFACTS / "steward-flows.png"))

    # Signing out ends the session.
    browser.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
    wait_for(browser, "the sign-in form", "#token")
    browser.get(f"{worker.url}/steward")
    assert browser.current_url.endswith("/steward/sign-in")
