"""``placehub bench``: run the scenarios, print one table of figures and ratios, write JSON.

Each scenario measures its own baseline in the same run, on the same machine, against a
broker of the bench's own: freshly formatted for each run (under ``.state/bench/broker``, on
the project's broker ports + 200) and stopped at the end, so leftovers of earlier runs or of
the tests (thousands of topics make every metadata response slower) do not colour the
figures. Figures are medians of ``Bench.repeats`` runs where a scenario repeats.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from hub import broker
from hub.config import PROJECT_ROOT, Settings
from tests.bench import alerts, ingest, latency, pipeline, profiles, query, scale
from tests.bench.harness import Bench, Figure

__all__ = ["SCENARIOS", "describe_machine", "render_table", "run_bench"]

SCENARIOS: dict[str, Callable[[Bench], list[Figure]]] = {
    "ingest": ingest.run,
    "pipeline": pipeline.run,
    "latency": latency.run,
    "alerts": alerts.run,
    "query": query.run,
    "scale": scale.run,
}


def run_bench(
    settings: Settings,
    quick: bool = False,
    only: Sequence[str] = (),
    json_path: Path | None = None,
    profile: bool = False,
    scale_people: int | None = None,
) -> int:
    """Run the chosen scenarios (all by default); print the table; write the JSON report."""
    chosen = [name for name in SCENARIOS if not only or name in only]
    settings = bench_broker(settings)
    shutil.rmtree(settings.broker_dir, ignore_errors=True)
    broker.start(settings, progress=lambda line: None)
    try:
        bench = Bench(settings, quick=quick, profile=profile, scale_people=scale_people)
        return _run(bench, chosen, json_path)
    finally:
        broker.stop(settings)


def bench_broker(settings: Settings) -> Settings:
    """``settings`` pointed at the bench's own broker (its own folder and ports)."""
    port, controller = settings.broker_port + 200, settings.controller_port + 200
    return settings.model_copy(
        update={
            "broker_dir": settings.state_dir / "bench" / "broker",
            "broker_port": port,
            "controller_port": controller,
            "bootstrap_servers": f"127.0.0.1:{port}",
        }
    )


def _run(bench: Bench, chosen: list[str], json_path: Path | None) -> int:
    settings, quick, profile = bench.base, bench.quick, bench.profile
    machine = describe_machine(settings)
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    for name in chosen:
        bench.progress(f"{name} ...")
        started = time.monotonic()
        try:
            figures.extend(SCENARIOS[name](bench))
        except Exception as exc:  # one scenario's failure must not hide the others' figures
            failures[name] = f"{type(exc).__name__}: {exc}"
            bench.progress(f"{name} FAILED: {failures[name]}")
        timings[name] = round(time.monotonic() - started, 1)
        bench.progress(f"{name} done in {timings[name]:.0f}s")
    machine["load_average_after"] = os.getloadavg()
    table = render_table(figures)
    print(f"\n{_machine_line(machine)}\n\n{table}")
    for name, failure in failures.items():
        print(f"\n{name} FAILED (no figures): {failure}")
    for incident in bench.incidents:
        print(f"\nincident (worker restarted): {incident}")
    report = {
        "machine": machine,
        "quick": quick,
        "scenario_seconds": timings,
        "failures": failures,
        "incidents": bench.incidents,
        "figures": [figure.as_json() for figure in figures],
        "table_markdown": table,
    }
    path = json_path or bench.root / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nJSON: {path}")
    if profile:
        for session in sorted(bench.root.glob("profile-*.pyisession")):
            print(f"\n{profiles.summarise(session)}")
        print(f"\nprofiles: {bench.root}/profile-*.txt, .html, .pyisession")
    return 1 if failures else 0


def describe_machine(settings: Settings) -> dict[str, Any]:
    """What the figures came from: hardware, software versions, and what else was running."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = ("faust-streaming", "aiokafka", "kafka-python", "confluent-kafka", "fastavro")
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "packages": {name: version(name) for name in packages},
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average_before": os.getloadavg(),
        "shared": "cores are shared with other processes (broker, bench, load generators, "
        "and whatever else runs on the machine): figures are indicative, ratios are the point",
        "broker": settings.bootstrap_servers,
    }


def _kafka_version() -> str:
    pom = (PROJECT_ROOT / "deploy" / "local" / "pom.xml").read_text()
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    return found.group(1) if found else "unknown"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def _machine_line(machine: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in machine["load_average_before"])
    return (
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"Python {machine['python']}, Kafka {machine['kafka']} (one local broker), commit "
        f"{machine['commit']}{'+' if machine['dirty'] else ''}, {machine['when']}; load "
        f"average at start {load}. {machine['shared']}."
    )


def render_table(figures: Sequence[Figure]) -> str:
    """A Markdown table: each figure, its baseline, the ratio, the target and whether met."""
    rows = [
        "| scenario | measure | placehub | baseline | baseline value | ratio | target |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None and math.isfinite(f.ratio) else "-"
        verdict = {True: " ✅", False: " ❌", None: ""}[f.met]
        base = _number(f.baseline_value, f.unit) if f.baseline_value is not None else "-"
        rows.append(
            f"| {f.scenario} | {f.measure} | {_number(f.value, f.unit)} | {f.baseline} | "
            f"{base} | {ratio} | {f.target}{verdict} |"
        )
    notes = [f"- {f.scenario}: {f.note}" for f in figures if f.note]
    return "\n".join(rows) + ("\n\nNotes:\n" + "\n".join(dict.fromkeys(notes)) if notes else "")


def _number(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "-"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit in ("MB", "KB"):
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"
