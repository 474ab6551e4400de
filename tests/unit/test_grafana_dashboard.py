"""``deploy/grafana/placehub.json`` reads only what the worker exposes: every panel has a
query, every metric name in it is one a worker's scrape holds (or a series the shipped
rules record), and every label it groups by is one of those series' labels. The real
Prometheus runs each query in ``tests/integration/test_prometheus.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hub.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "placehub.json"
# What the dashboard must show (issue 13 items 5 and 6).
SHOWN = {
    "up",
    "placehub_partner_last_event_timestamp_seconds",
    "placehub_dead_letters_total",
    "placehub_lawful_basis_checks_total",
    "placehub:consent_coverage:ratio_1h",
    "placehub_consumer_lag_records",
    "placehub_event_latency_seconds_bucket",
    "placehub_alerts_total",
    "placehub_alert_feedback_total",
}


def queries() -> list[str]:
    """Every panel's queries (panels inside collapsed rows too)."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
    found = []
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r}: empty expr"
            found.append(target["expr"])
    return found


def exposed() -> dict[str, set[str]]:
    """Each series name a scrape of a worker holds, with its labels (every series
    declared and moved once)."""
    metrics = Metrics()
    metrics.declare_partners(["council-housing"])
    metrics.declare_rules(["repeat-ae-attendance"])
    metrics.declare_webhooks(["council-housing"])
    metrics.declare_stages(["gate"])
    for name, counter in metrics._by_name.items():
        metrics.count(name, ("x",) * len(counter._labelnames))
    names: dict[str, set[str]] = {}
    for family in metrics.public.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def recorded() -> dict[str, set[str]]:
    """The series the shipped rules record, with the labels they keep."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    found = {}
    for rule in (r for group in rules["groups"] for r in group["rules"] if "record" in r):
        by = re.search(r"by \(([^)]*)\)", rule["expr"])
        found[rule["record"]] = {label.strip() for label in by.group(1).split(",")} if by else set()
    return found


def names_in(expr: str) -> set[str]:
    """The series names an expression reads (string literals left out)."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b(?:placehub[\w:]*|up)\b(?=\s*[{\[)]|\s*$|\s*[-+*/<>=])", bare))


def test_the_dashboard_parses_and_every_panel_has_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "placehub-operations"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert len(queries()) >= len(SHOWN)


def test_every_series_a_panel_reads_is_one_a_worker_exposes_or_the_rules_record() -> None:
    known = exposed() | recorded() | {"up": {"job", "instance"}}
    read: set[str] = set()
    for expr in queries():
        names = names_in(expr)
        assert names, f"no series in {expr!r}"
        assert names <= set(known), f"{expr!r} reads {sorted(names - set(known))}"
        labels = set().union(*(known[name] for name in names))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            grouped = {label.strip() for label in group.split(",")}
            assert grouped <= labels, f"{expr!r} groups by {sorted(grouped - labels)}"
        read |= names
    assert read >= SHOWN, sorted(SHOWN - read)


def test_the_name_check_catches_a_series_no_worker_exposes() -> None:
    names = names_in('sum by (stage) (rate(placehub_dead_letter_total{stage="gate"}[5m]))')
    assert names == {"placehub_dead_letter_total"} and not names <= set(exposed())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_panel_says_what_it_shows() -> None:
    for panel in _panels(json.loads(DASHBOARD.read_text())):
        assert panel.get("description"), panel["title"]
