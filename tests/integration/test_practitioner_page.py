"""The practitioners' page end to end: Debian's Chromium, headless, driven through Selenium
with Debian's chromedriver, against a real worker on the real broker, used as a person
would: sign in, read the inbox, open an alert, press a feedback button, open the timeline,
see a new alert arrive without reloading and an erased one go. The run keeps a screenshot
of the inbox under ``.state/artefacts/`` (path printed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hub.config import PROJECT_ROOT
from hub.models import AuditRecord
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, free_port, read_topic
from tests.integration.test_alerts import (
    HOUSING_PRACTITIONER,
    SCHOOL_PRACTITIONER,
    publish_three_domains,
    publish_under_consent,
    withdraw_consent,
)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTEFACTS = PROJECT_ROOT / ".state" / "artefacts"
WAIT_S = 60


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium from Debian's packages (``make test`` installs them; a missing
    browser fails the test, never skips it)."""
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), (
        "chromium and chromium-driver are not installed: scripts/chromium.sh install"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, what: str, css: str, timeout_s: float = WAIT_S) -> Any:
    """The element ``css`` selects once the page shows it (AssertionError naming ``what``)."""
    try:
        return WebDriverWait(driver, timeout_s).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None)
        )
    except Exception as exc:
        raise AssertionError(f"the page did not show {what} ({css}) in {timeout_s}s") from exc


def sign_in(driver: WebDriver, worker: WorkerProcess, token: str) -> None:
    driver.get(f"{worker.url}/practitioner/sign-in")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()


def alert_ids(driver: WebDriver) -> list[str]:
    items = driver.find_elements(By.CSS_SELECTOR, "#inbox li[data-alert-id]")
    return [item.get_attribute("data-alert-id") or "" for item in items]


def inbox_api(worker: WorkerProcess, token: str) -> dict[str, dict[str, Any]]:
    reply = worker.get("/v1/alerts", token=token)
    assert reply.status_code == 200, reply.text
    return {a["person_id"]: a for a in reply.json()["alerts"]}


def audited(worker: WorkerProcess, actor: str) -> list[AuditRecord]:
    """``actor``'s records on the hub's audit trail."""
    s = worker.settings
    serde = Serde(SchemaRegistry(s))
    records = [
        serde.decode(v, AuditRecord) for _, v, _ in read_topic(s, Topics(s.topic_prefix).audit)
    ]
    return [r for r in records if r.actor == actor]


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    print(f"screenshot: {path}")
    return path


def test_a_practitioner_signs_in_reads_an_alert_gives_feedback_and_sees_new_alerts_live(
    make_worker: WorkerFactory, browser: WebDriver
) -> None:
    worker = make_worker()
    a = publish_three_domains(worker.settings)
    worker.wait_for(
        "/v1/alerts",
        lambda r: r.ok and any(x["person_id"] == a for x in r.json()["alerts"]),
        timeout_s=WAIT_S,
        token=HOUSING_PRACTITIONER,
        expecting="person A's alert",
    )
    alert_a = inbox_api(worker, HOUSING_PRACTITIONER)[a]["alert_id"]

    # No session: the page sends the browser to the sign-in form.
    browser.get(f"{worker.url}/practitioner")
    assert browser.current_url.endswith("/practitioner/sign-in")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    # A bad token is refused on the form, in words, and opens no session.
    sign_in(browser, worker, "not-a-real-token")
    error = wait_for(browser, "the sign-in error", "[role=alert]")
    assert "not recognised" in error.text and "not-a-real-token" not in browser.page_source
    assert browser.get_cookie("placehub_session") is None
    # A steward's token is a real one, but not for this page.
    sign_in(browser, worker, "demo-steward")
    assert "for practitioners" in wait_for(browser, "the role error", "[role=alert]").text
    assert browser.get_cookie("placehub_session") is None

    sign_in(browser, worker, HOUSING_PRACTITIONER)
    wait_for(browser, "A's alert in the inbox", f"#inbox li[data-alert-id='{alert_a}']")
    cookie = browser.get_cookie("placehub_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] not in browser.current_url
    item = browser.find_element(By.CSS_SELECTOR, f"li[data-alert-id='{alert_a}']")
    assert "Severity: high" in item.text and "REF-1" in item.text

    # The explanation, then a feedback button pressed.
    item.find_element(By.TAG_NAME, "a").click()
    heading = wait_for(browser, "the explanation", "table.events")
    assert "Housing: arrears" in heading.text and "Education: suspension" in heading.text
    browser.find_element(By.ID, "reason_code").send_keys("new-to-us")
    browser.find_element(By.CSS_SELECTOR, "button[value=USEFUL]").click()
    recorded = wait_for(browser, "the feedback confirmation", "#feedback-recorded")
    assert "Useful" in recorded.text
    rules = worker.get("/v1/alerts/usefulness", token="demo-steward").json()["rules"]
    assert rules["multi-domain-needs"]["council-housing"]["USEFUL"] == 1

    # The person's timeline, as the people API shows it to housing.
    browser.find_element(By.LINK_TEXT, "See the person's timeline").click()
    wait_for(browser, "the timeline", "table.events tbody tr")
    api_view = worker.get(f"/v1/people/{a}", token=HOUSING_PRACTITIONER).json()
    rows = browser.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    assert len(rows) == api_view["event_count"] == 3
    assert "REF-1" in browser.find_element(By.CSS_SELECTOR, "ul.partners").text
    # Each page that showed A was audited (before it went) with the data owners shown.
    trail = {(r.action, r.outcome, r.person_id) for r in audited(worker, "alex.housing")}
    assert {("alert.view", "ok", a), ("alert.feedback", "ok", a), ("person.read", "ok", a)} <= trail
    owners = {r.action: r.owners for r in audited(worker, "alex.housing") if r.person_id == a}
    everyone = ["city-health", "council-housing", "northfield-school"]
    assert owners["alert.view"] == owners["person.read"] == everyone

    # Live: a new alert appears in the open inbox without a reload.
    browser.get(f"{worker.url}/practitioner")
    seen_a = wait_for(browser, "the inbox", f"li[data-alert-id='{alert_a}']")
    assert "Status: acknowledged" in seen_a.text  # the feedback acknowledged it
    browser.execute_script("window.stillTheSamePage = true;")
    b = publish_under_consent(worker.settings)
    worker.wait_for(
        "/v1/alerts",
        lambda r: r.ok and any(x["person_id"] == b for x in r.json()["alerts"]),
        timeout_s=WAIT_S,
        token=HOUSING_PRACTITIONER,
        expecting="person B's alert",
    )
    alert_b = inbox_api(worker, HOUSING_PRACTITIONER)[b]["alert_id"]
    wait_for(browser, "B's alert arriving live", f"li[data-alert-id='{alert_b}']")
    assert browser.execute_script("return window.stillTheSamePage === true;")
    assert alert_ids(browser)[0] == alert_b  # newest first
    assert "New alert" in browser.find_element(By.ID, "live-status").text
    screenshot(browser, "practitioner-inbox")

    # Signing out ends the session.
    browser.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
    wait_for(browser, "the sign-in form", "#token")
    browser.get(f"{worker.url}/practitioner")
    assert browser.current_url.endswith("/practitioner/sign-in")

    # Another organisation's practitioner: told of A, not of B (southside's pupil).
    sign_in(browser, worker, SCHOOL_PRACTITIONER)
    wait_for(browser, "A's alert in the school's inbox", f"li[data-alert-id='{alert_a}']")
    assert alert_b not in alert_ids(browser)
    browser.get(f"{worker.url}/practitioner/alerts/{alert_b}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Alert not found"
    browser.get(f"{worker.url}/practitioner/people/{b}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Person not found"

    # Housing's open inbox drops B's alert as soon as B's consent is withdrawn.
    browser.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
    sign_in(browser, worker, HOUSING_PRACTITIONER)
    wait_for(browser, "B's alert in housing's inbox", f"li[data-alert-id='{alert_b}']")
    withdraw_consent(worker.settings)
    try:
        WebDriverWait(browser, WAIT_S).until(lambda d: alert_b not in alert_ids(d))
    except Exception as exc:
        raise AssertionError(f"B's erased alert stayed on the page for {WAIT_S}s") from exc
    assert alert_ids(browser) == [alert_a]
    assert "withdrawn" in browser.find_element(By.ID, "live-status").text

    # Closed (through the API): the page's inbox, like the API's, lists open and
    # acknowledged alerts only.
    closed = requests.post(
        f"{worker.url}/v1/alerts/{alert_a}/status",
        json={"status": "closed"},
        headers={"Authorization": f"Bearer {HOUSING_PRACTITIONER}"},
        timeout=10,
    )
    assert closed.status_code == 200, closed.text
    browser.get(f"{worker.url}/practitioner")
    wait_for(browser, "the empty inbox", "#inbox-empty:not([hidden])")
    assert alert_ids(browser) == []


def test_the_page_refuses_requests_without_a_session_or_its_csrf_token(
    worker: WorkerProcess,
) -> None:
    base = f"{worker.url}/practitioner"
    for path in ("", "/alerts/x", "/people/x"):
        reply = requests.get(base + path, allow_redirects=False, timeout=10)
        assert (reply.status_code, reply.headers["Location"]) == (303, "/practitioner/sign-in")
    assert requests.get(f"{base}/stream", timeout=10).status_code == 401
    session = requests.Session()
    signed = session.post(f"{base}/sign-in", data={"token": HOUSING_PRACTITIONER}, timeout=10)
    assert signed.status_code == 200 and "Alerts for council-housing" in signed.text
    assert "default-src 'none'" in signed.headers["Content-Security-Policy"]
    assert signed.headers["Cache-Control"] == "no-store"
    forged = session.post(f"{base}/alerts/x/feedback", data={"outcome": "USEFUL"}, timeout=10)
    assert forged.status_code == 403
    elsewhere = session.post(
        f"{base}/sign-out", data={}, headers={"Origin": "http://evil.example"}, timeout=10
    )
    assert elsewhere.status_code == 403
    assert session.get(base, allow_redirects=False, timeout=10).status_code == 200


def test_each_of_two_workers_serves_the_timeline_whichever_owns_the_view(
    make_worker: WorkerFactory,
) -> None:
    first = make_worker()
    second = make_worker(web_port=free_port(), state_dir=first.settings.state_dir.parent / "2")
    a = publish_three_domains(first.settings)
    path = f"/v1/people/{a}"

    def whole(reply: requests.Response) -> bool:
        return reply.ok and reply.json()["event_count"] == 3

    for worker in (first, second):
        worker.wait_for(path, whole, WAIT_S, HOUSING_PRACTITIONER, "A's three events")
    # One worker owns A's view; the other's page asks it (a worker assertion, no token).
    for worker in (first, second):
        session = requests.Session()
        signed = session.post(
            f"{worker.url}/practitioner/sign-in", data={"token": HOUSING_PRACTITIONER}, timeout=10
        )
        assert signed.status_code == 200, signed.text
        page = session.get(f"{worker.url}/practitioner/people/{a}", timeout=10)
        assert page.status_code == 200, page.text
        assert page.text.count("<tr>") == 1 + 3  # the header row, then one per event
        assert "<code>REF-1</code>" in page.text
