"""Query: ``GET /v1/people/{id}`` latency and rate under concurrent load from another process.

Method. A worker is loaded with the simulated place (every person has at least one event),
then a separate process (``loadgen http``, aiohttp, 32 connections) reads random people's
views as a practitioner: each request authenticates, reads the table, minimises the view
and writes an audit record to Kafka. Baselines in the same run, same load generator: a
trivial aiohttp handler returning a constant JSON body (the framework's ceiling on this
machine), and the worker's own ``/v1/health`` (Faust's web server, no table, no audit).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import requests

from connectors.simulate import Place
from hub.config import PROJECT_ROOT, Settings
from tests.bench.harness import (
    Bench,
    Figure,
    encode,
    median,
    one_event_each,
    partners_of,
    percentiles,
    prepare,
    produce,
    wait_for_views,
    wait_until,
)
from tests.integration.helpers import free_port, worker_env

__all__ = ["run"]

PEOPLE = 2_000
CONCURRENCY = 32


def run(bench: Bench) -> list[Figure]:
    """Person reads, health reads and the trivial handler, ``bench.repeats`` runs each."""
    count = 2_000 if bench.quick else 5_000
    settings = bench.hub("query")
    try:
        prepare(settings)
        place = Place(seed=9, people=PEOPLE, consent_rate=1.0)
        drafts = [*one_event_each(place), *place.events(PEOPLE * 4)]
        consents, events = encode(settings, [place.consent(p) for p in place.people], drafts)
        produce(settings, consents)
        ids = [Place.person_id(person, settings.place_key_bytes()) for person in place.people]
        with bench.workers(settings) as (worker, *_):
            produce(settings, events)
            wait_for_views([worker], partners_of(events), len(events), 300)
            people = [
                _load(settings, f"{worker.url}/v1/people/{{id}}", ids, count)
                for _ in range(bench.repeats)
            ]
            health = [
                _load(settings, f"{worker.url}/v1/health", [], count) for _ in range(bench.repeats)
            ]
        trivial = _trivial(settings, ids, count, bench.repeats)
    finally:
        bench.delete(settings)
    bench.progress(
        f"  people p50 {_med(people, 'p50'):.1f} ms, health p50 {_med(health, 'p50'):.1f} ms, "
        f"trivial p50 {_med(trivial, 'p50'):.1f} ms"
    )
    note = f"{count} requests, {CONCURRENCY} connections, {PEOPLE} people; " + _statuses(people)
    base = "trivial aiohttp handler, same load"
    figures = [
        Figure(
            "query",
            f"GET /v1/people/{{id}} {p}",
            _med(people, p),
            "ms",
            base,
            _med(trivial, p),
            higher_is_better=False,
            note=note,
            runs=[r[p] for r in people],
            baseline_runs=[r[p] for r in trivial],
        )
        for p in ("p50", "p99")
    ]
    figures.append(
        Figure(
            "query",
            "GET /v1/people/{id} throughput",
            _med(people, "rate"),
            "requests/s",
            base,
            _med(trivial, "rate"),
            note=note,
            runs=[r["rate"] for r in people],
            baseline_runs=[r["rate"] for r in trivial],
        )
    )
    figures.append(
        Figure(
            "query",
            "GET /v1/health p50 (Faust web, no table, no audit)",
            _med(health, "p50"),
            "ms",
            base,
            _med(trivial, "p50"),
            higher_is_better=False,
            runs=[r["p50"] for r in health],
        )
    )
    return figures


def _med(results: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in results])


def _statuses(results: list[dict[str, Any]]) -> str:
    totals: dict[str, int] = {}
    for result in results:
        for status, n in result["statuses"].items():
            totals[status] = totals.get(status, 0) + n
    return "statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(totals.items()))


def _load(settings: Settings, url: str, ids: list[str], count: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.bench.loadgen", "http", "--url", url]
    command += ["--ids", ",".join(ids), "--requests", str(count)]
    command += ["--concurrency", str(CONCURRENCY)]
    out = subprocess.run(
        command, env=worker_env(settings), cwd=PROJECT_ROOT, capture_output=True, check=True
    ).stdout
    result = json.loads(out)
    latencies = [s * 1000 for s in result["latencies_s"]]
    return {
        **percentiles(latencies),
        "rate": len(latencies) / result["seconds"],
        "statuses": result["statuses"],
    }


def _trivial(settings: Settings, ids: list[str], count: int, runs: int) -> list[dict[str, Any]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.loadgen", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=worker_env(settings),
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/people/{{id}}"
        wait_until(lambda: _answers(url.replace("{id}", "x")), 30, "the trivial server")
        return [_load(settings, url, ids, count) for _ in range(runs)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False
