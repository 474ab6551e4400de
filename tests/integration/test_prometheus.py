"""A real Prometheus server (Debian's package, ``scripts/prometheus.sh``) scrapes a real
worker with the scrape token, loads the shipped rules, answers queries for placehub series
and runs every query of the Grafana dashboard (``deploy/grafana/placehub.json``); and the
worker's ``/metrics`` passes ``promtool check metrics``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from connectors import Publisher
from hub.config import PROJECT_ROOT
from hub.stages.reasons import BASIS_RESULTS
from hub.topics import Topics
from tests.bench.harness import wait_for_consents
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, free_port, produce_raw
from tests.integration.test_stream_core import HOUSING, consent_draft, draft, status, wait_until

SCRAPE_TOKEN = "scrape-token-for-the-prometheus-test-0123"
RULES = PROJECT_ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "placehub.json"
NUMBERS = ["943 476 5919", "401 023 2137", "943 476 5870"]
LATER = ["450 557 7104", "943 476 5889"]  # published while Prometheus scrapes


class Prometheus:
    """A ``prometheus`` process on a free port with its own config and storage."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder, self.port = folder, free_port()
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful answer of the HTTP API; None while it is not up."""
        assert self.process.poll() is None, f"prometheus exited; see {self.log}"
        try:
            reply = requests.get(f"http://127.0.0.1:{self.port}/api/v1/{path}", params, timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            return None
        if reply.status_code != 200:
            return None
        return reply.json()["data"]

    def query(self, expr: str, by: str = "job") -> dict[str, float]:
        """An instant query's series, each by its label ``by`` ("" without it) → value."""
        data = self.api("query", query=expr)
        if data is None:
            return {}
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in data["result"]}

    def series(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; raises naming the query and Prometheus's error if it
        fails (a bad expression, an unknown function)."""
        reply = requests.get(
            f"http://127.0.0.1:{self.port}/api/v1/query", {"query": expr}, timeout=10
        )
        answer = reply.json()
        assert answer.get("status") == "success", f"{expr}: {answer.get('error')}"
        return list(answer["data"]["result"])

    def wait_for(
        self, expr: str, expected: dict[str, float], by: str = "job", timeout_s: float = 60
    ) -> None:
        """Until ``expr`` answers ``expected`` (``query``); raises naming both and the last
        answer."""
        deadline = time.monotonic() + timeout_s
        while (answer := self.query(expr, by)) != expected:
            assert time.monotonic() < deadline, (
                f"prometheus: {expr} gave {answer}, not {expected} within {timeout_s}s; "
                f"see {self.log}"
            )
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def scrape_job(name: str, worker: WorkerProcess, token_file: Path) -> dict[str, Any]:
    return {
        "job_name": name,
        "scrape_interval": "1s",
        "metrics_path": "/metrics",
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "static_configs": [{"targets": [f"127.0.0.1:{worker.settings.web_port}"]}],
    }


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    return folder


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics-token"
    path.write_text(SCRAPE_TOKEN + "\n")
    return path


def start_prometheus(folder: Path, jobs: list[dict[str, Any]]) -> Prometheus:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }
    return Prometheus(folder, config)


@pytest.fixture
def scraped_worker(make_worker: WorkerFactory, token_file: Path) -> WorkerProcess:
    """A worker with a scrape token (from a file) that has taken three housing events."""
    worker = make_worker(metrics_token_file=token_file, watchdog_interval_s=1)
    with Publisher("council-housing", "northgate", worker.settings) as housing:
        housing.publish_consents(
            [consent_draft(f"c-{n}", {"nhs": nhs}) for n, nhs in enumerate(NUMBERS)]
        )
        # Each check's result is counted: an event must not reach the gate before its
        # consent (it would be checked unknown, held, then released).
        wait_for_consents(worker.settings, len(NUMBERS), timeout_s=60)
        housing.publish_many(
            [draft({"nhs": nhs}, HOUSING, consent_id=f"c-{n}") for n, nhs in enumerate(NUMBERS)]
        )
    wait_until(
        lambda: status(worker, "council-housing").get("in_view") == len(NUMBERS),
        describe=lambda: status(worker, "council-housing"),
    )
    return worker


@pytest.fixture
def prometheus(
    scraped_worker: WorkerProcess, prometheus_dir: Path, token_file: Path, tmp_path: Path
) -> Iterator[Prometheus]:
    """Prometheus scraping the worker as ``placehub`` and, with a wrong token, as
    ``wrong-token``; stopped after the test."""
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-scrape-token-0123456789\n")
    server = start_prometheus(
        prometheus_dir,
        [
            scrape_job("placehub", scraped_worker, token_file),
            scrape_job("wrong-token", scraped_worker, wrong),
        ],
    )
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_the_worker_with_the_token_and_answers_for_placehub_series(
    prometheus: Prometheus,
) -> None:
    prometheus.wait_for("up", {"placehub": 1.0, "wrong-token": 0.0})  # the token matters
    prometheus.wait_for(
        'sum by (fate) (placehub_records_settled_total{partner="council-housing",fate="in_view"})',
        {"in_view": float(len(NUMBERS))},
        by="fate",
    )
    # The series the alerting rules read are there: freshness after the gate took the
    # events, dead letters and lag per stage (none here; at 0 from the start).
    fresh = prometheus.query(
        'time() - placehub_partner_last_event_timestamp_seconds{partner="council-housing"}'
    )
    assert set(fresh) == {"placehub"} and 0 <= fresh["placehub"] < 300, fresh
    prometheus.wait_for('sum(placehub_dead_letters_total{stage="gate"})', {"": 0.0})
    prometheus.wait_for('sum(placehub_consumer_lag_records{stage="view"})', {"": 0.0})


def test_prometheus_loads_the_shipped_alerting_rules(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 60
    while not (groups := (prometheus.api("rules") or {}).get("groups")):
        assert time.monotonic() < deadline, f"no rule groups loaded; see {prometheus.log}"
        time.sleep(0.5)
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == {
        "PlacehubWorkerDown",
        "PlacehubPartnerSilent",
        "PlacehubDeadLettersGrowing",
        "PlacehubConsumerLagHigh",
        "placehub:consent_coverage:ratio_1h",
    }
    assert all(rule["health"] != "err" for rule in rules.values()), rules


def dashboard_queries() -> dict[str, list[str]]:
    """Each panel's title → its queries."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in panels if p["type"] != "row"}


# Panels that must show series once a few events went through while Prometheus scraped.
CORE_PANELS = {
    "Workers up",
    "Freshness per partner",
    "Events in, by partner and gate outcome",
    "Dead letters by stage and reason",
    "Held in quarantine, by partner and reason",
    "Consent coverage per partner",
    "Consumer lag per stage",
    "Publish to view latency",
    "Alerts by rule and outcome",
    "Feedback by rule and verdict",
}


def test_every_dashboard_query_runs_and_the_core_panels_show_the_events(
    prometheus: Prometheus, scraped_worker: WorkerProcess
) -> None:
    prometheus.wait_for("up", {"placehub": 1.0, "wrong-token": 0.0})
    settings = scraped_worker.settings
    # While it scrapes: one event admitted, one held (its consent never sent), one
    # unreadable record; so rates over the last minutes are not zero.
    with Publisher("council-housing", "northgate", settings) as housing:
        housing.publish_consent(consent_draft("c-later", {"nhs": LATER[0]}))
        wait_for_consents(settings, len(NUMBERS) + 1, timeout_s=60)
        housing.publish(draft({"nhs": LATER[0]}, HOUSING, consent_id="c-later"))
        housing.publish(draft({"nhs": LATER[1]}, HOUSING, consent_id="c-never-sent"))
    produce_raw(settings, Topics(settings.topic_prefix).partner("council-housing"), b"x")
    wait_until(
        lambda: (
            status(scraped_worker, "council-housing").get("in_flight") == 0
            and status(scraped_worker, "council-housing").get("received") == len(NUMBERS) + 3
        ),
        describe=lambda: status(scraped_worker, "council-housing"),
    )
    housing_checks = 'placehub_lawful_basis_checks_total{partner="council-housing",basis="consent"}'
    # Every result at 0 from the start but the live four and the one held.
    expected = dict.fromkeys(BASIS_RESULTS["consent"], 0.0) | {"live": 4.0, "unknown": 1.0}
    prometheus.wait_for(f"sum by (result) ({housing_checks})", expected, by="result")
    prometheus.wait_for(
        'sum(placehub_event_latency_seconds_count{partner="council-housing"})', {"": 4.0}
    )
    prometheus.wait_for(
        'sum by (reason) (placehub_dead_letters_total{stage="gate",reason="undecodable"})',
        {"undecodable": 1.0},
        by="reason",
    )
    prometheus.wait_for("count(placehub:consent_coverage:ratio_1h)", {"": 1.0})
    panels = dashboard_queries()
    assert set(panels) >= CORE_PANELS, sorted(CORE_PANELS - set(panels))
    empty = []
    for title, exprs in panels.items():
        answers = [prometheus.series(expr) for expr in exprs]  # none may fail
        if title in CORE_PANELS and not all(answers):
            empty.append(title)
    assert not empty, f"panels without series: {empty}"
    (p99,) = prometheus.series(panels["Publish to view latency"][2])
    assert 0 < float(p99["value"][1]) < 300, p99  # seconds, publish to view


def test_the_workers_metrics_pass_promtool_check_metrics(scraped_worker: WorkerProcess) -> None:
    scraped = scraped_worker.get("/metrics", token=SCRAPE_TOKEN)
    assert scraped.status_code == 200
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=scraped.content, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"placehub_partner_last_event_timestamp_seconds{" in scraped.content
    # The runtime's own histograms: every batch the gate took, its size and delivery time.
    counts = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.labels.get("stage") == "gate"
    }
    for series in ("placehub_stage_batch_records", "placehub_stage_delivery_seconds"):
        assert counts[f"{series}_count"] >= 1, series
