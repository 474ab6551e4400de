"""``deploy/prometheus/`` passes the real ``promtool`` (installed by
``scripts/prometheus.sh``): the scrape config, the alerting rules, and the rules' unit
tests (``rules.test.yml``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = {
    "PlacehubWorkerDown",
    "PlacehubPartnerSilent",
    "PlacehubDeadLettersGrowing",
    "PlacehubConsumerLagHigh",
}
RECORDS = {"placehub:consent_coverage:ratio_1h"}


def promtool(*args: str, cwd: Path = DEPLOY) -> str:
    """Run promtool; its output, or an assertion error with it if it failed."""
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_scrape_config_is_valid(tmp_path: Path) -> None:
    """Checked where it would run: deploy/prometheus/ beside a .state/metrics-token (the
    scrape token file it names, which promtool requires to exist)."""
    copy = tmp_path / "deploy" / "prometheus"
    shutil.copytree(DEPLOY, copy)
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "metrics-token").write_text("a-scrape-token-for-the-check\n")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=copy)


def test_the_scrape_config_sends_the_token_from_a_file_never_inline() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "placehub" and job["metrics_path"] == "/metrics"
    assert set(job["authorization"]) == {"type", "credentials_file"}
    assert config["rule_files"] == ["rules.yml"]


def test_the_rules_are_valid_and_name_every_operational_alert() -> None:
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", "rules.yml")
    rules = [rule for group in _yaml("rules.yml")["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules if "alert" in rule} == ALERTS
    assert {rule["record"] for rule in rules if "record" in rule} == RECORDS


def test_the_rules_pass_their_unit_tests() -> None:
    tests = _yaml("rules.test.yml")["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert tested == ALERTS  # every alert has a test
    exprs = {case["expr"] for test in tests for case in test.get("promql_expr_test", [])}
    assert exprs == RECORDS  # and every recorded series
    assert "SUCCESS" in promtool("test", "rules", "rules.test.yml")


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_promtool_test_rules_fails_a_rule_that_does_not_fire_as_tested(tmp_path: Path) -> None:
    """The rules' tests can fail: with the lag threshold raised, the lag test does."""
    copy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY, copy)
    rules = (copy / "rules.yml").read_text()
    (copy / "rules.yml").write_text(rules.replace("> 1000", "> 5000"))
    done = subprocess.run(
        ["promtool", "test", "rules", "rules.test.yml"], cwd=copy, capture_output=True, text=True
    )
    assert done.returncode != 0 and "PlacehubConsumerLagHigh" in done.stdout + done.stderr


def test_promtool_test_rules_fails_a_recorded_series_that_is_not_as_tested(
    tmp_path: Path,
) -> None:
    """With agreements counted in consent coverage, its test fails."""
    copy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY, copy)
    rules = (copy / "rules.yml").read_text()
    (copy / "rules.yml").write_text(rules.replace('{basis="consent"}[1h]', "[1h]"))
    done = subprocess.run(
        ["promtool", "test", "rules", "rules.test.yml"], cwd=copy, capture_output=True, text=True
    )
    assert done.returncode != 0 and "consent_coverage" in done.stdout + done.stderr
