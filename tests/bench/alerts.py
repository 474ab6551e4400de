"""Alerts: publish → alert on a practitioner's SSE stream, beside publish → view, one run.

Method. The latency scenario's load (a separate process publishing the simulated place at
1,000 events/s, each event id carrying its publish time) runs once while the bench process
watches three things at the same time: the views changelog (publish → view, as the latency
scenario measures it), ``hub.alerts`` (each alert's event ids, keyed by alert id and the
moment it was raised) and the live streams of the demo's two practitioners (housing and
the school) on ``GET /v1/alerts/stream``. An alert's latency is the moment its first stream
received it minus the publish time of the newest event it was raised on (``alert_latencies``):
the event that made the rule hold. Both latencies are measured on this machine's clock.

The baseline is publish → view of the same run: an alert cannot reach a stream before the
event that raises it is in the person's view, so the ratio is what the alerts stage, its
table and the stream add. The target: p99 within 1.5x of publish → view.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.simulate import Place
from hub.config import PROJECT_ROOT, Settings
from hub.models import Alert
from hub.registry import SchemaRegistry
from hub.serde import Serde
from tests.bench.harness import (
    Bench,
    Figure,
    encode,
    percentiles,
    prepare,
    produce,
    wait_for_consents,
)
from tests.bench.latency import PEOPLE, Watcher, from_the_end, view_times
from tests.bench.loadgen import published_at
from tests.integration.helpers import worker_env
from tests.integration.sse import SseClient, SseEvent

__all__ = ["alert_latencies", "run", "unstreamed"]

RATE = 1_000
DRAIN_S = 60.0
PRACTITIONERS = {
    # Housing's financial inclusion team: told of housing's alerts and of its team's
    # (sanction-then-food-bank), so every raise told to housing reaches this stream.
    "council-housing": "demo-practitioner-financial-inclusion",
    "northfield-school": "demo-practitioner-school",
}
TARGET_RATIO = 1.5

# An alert as raised: (alert id, raised at in ms since the epoch).
Raise = tuple[str, int]


def run(bench: Bench) -> list[Figure]:
    """p50/p95/p99 of publish → alert on a stream and of publish → view, at 1,000/s."""
    seconds = 5.0 if bench.quick else 10.0
    settings = bench.hub("alerts")
    try:
        prepare(settings)
        place = Place(seed=3, people=PEOPLE, consent_rate=1.0)
        consents, _ = encode(settings, [place.consent(p) for p in place.people], [])
        produce(settings, consents)
        with bench.workers(settings) as workers:
            wait_for_consents(settings, len(consents))
            measured = _measure(settings, workers[0].url, seconds)
    finally:
        bench.delete(settings)
    alert, view = measured["alert"], measured["view"]
    bench.progress(
        f"  {RATE}/s: alert p50 {alert['p50']:.0f} p99 {alert['p99']:.0f} ms "
        f"({alert['n']} alerts on the streams of {measured['raised']} raised for them); "
        f"view p50 {view['p50']:.0f} p99 {view['p99']:.0f} ms"
    )
    return [_figure(p, measured, seconds) for p in ("p50", "p95", "p99")]


def _figure(p: str, measured: dict[str, Any], seconds: float) -> Figure:
    alert, view = measured["alert"], measured["view"]
    target = f"p99 within {TARGET_RATIO}x of publish → view" if p == "p99" else ""
    missing = measured["missing"]
    return Figure(
        "alerts",
        f"publish → alert on an SSE client {p} at {RATE:,}/s",
        alert[p],
        "ms",
        "publish → view, same run",
        view[p],
        higher_is_better=False,
        target=target,
        met=(alert[p] <= TARGET_RATIO * view[p] and missing == 0) if target else None,
        note=f"{seconds:g}s at {measured['rate']:.0f}/s achieved; {measured['raised']} raises "
        f"for the two practitioners' organisations, {alert['n']} timed on a stream"
        + (f", {missing} not on a stream within {DRAIN_S:.0f}s" if missing else ""),
    )


def _measure(settings: Settings, url: str, seconds: float) -> dict[str, Any]:
    views = Watcher(settings, f"{settings.app_id}-views-changelog", view_times)
    raised = _Raised(settings)
    streams = [SseClient(f"{url}/v1/alerts/stream", t) for t in PRACTITIONERS.values()]
    for stream in streams:
        stream.caught_up()  # subscribed: nothing raised from here on can be missed
    command = [sys.executable, "-m", "tests.bench.loadgen", "publish"]
    command += ["--rate", str(RATE), "--seconds", str(seconds), "--people", str(PEOPLE)]
    loader = subprocess.Popen(
        command, env=worker_env(settings), cwd=PROJECT_ROOT, stdout=subprocess.PIPE
    )
    try:
        while loader.poll() is None:
            views.poll(0.05)
            raised.poll(0.0)
        out, _ = loader.communicate()
        if loader.returncode:
            raise RuntimeError(f"load generator failed with exit code {loader.returncode}")
        sent = json.loads(out)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and (
            len(views.latencies_ms) < sent["sent"] or not _all_streamed(raised, streams)
        ):
            views.poll(0.05)
            raised.poll(0.0)
    finally:
        if loader.poll() is None:
            loader.kill()
        views.close()
        raised.close()
        for stream in streams:
            stream.close()
    received = [e for stream in streams for e in stream.events]
    return {
        "alert": percentiles(alert_latencies(received, raised.events, views.since_ns)),
        "view": percentiles(views.latencies_ms),
        "raised": len(raised.told),
        "missing": len(unstreamed(raised.told, received)),
        "rate": sent["rate"],
    }


def _all_streamed(raised: _Raised, streams: list[SseClient]) -> bool:
    return not unstreamed(raised.told, [e for s in streams for e in s.events])


def unstreamed(told: Iterable[Raise], received: Iterable[SseEvent]) -> set[Raise]:
    """The raises no stream showed: neither as raised nor as raised again since (a stream
    shows an alert as it stands when it is sent, so an escalation can overtake a raise)."""
    latest: dict[str, int] = {}
    for event in received:
        if event.event == "alert":
            alert_id, raised_ms = _raise_of(json.loads(event.data))
            latest[alert_id] = max(latest.get(alert_id, raised_ms), raised_ms)
    return {(a, ms) for a, ms in told if latest.get(a, -1) < ms}


def alert_latencies(
    received: Iterable[SseEvent], raised: Mapping[Raise, list[str]], since_ns: int
) -> list[float]:
    """For each alert raised on events published since ``since_ns``: the first stream's
    receipt minus the publish time of the newest of those events, in ms."""
    first: dict[Raise, int] = {}
    for event in received:
        if event.event == "alert":
            key = _raise_of(json.loads(event.data))
            first[key] = min(first.get(key, event.at_ns), event.at_ns)
    latencies = []
    for key, at_ns in first.items():
        published = [p for e in raised.get(key, []) if (p := published_at(e)) is not None]
        published = [p for p in published if p >= since_ns]
        if published:
            latencies.append((at_ns - max(published)) / 1e6)
    return latencies


def _raise_of(item: dict[str, Any]) -> Raise:
    raised_at = datetime.fromisoformat(item["raised_at"])
    return item["alert_id"], (raised_at - datetime(1970, 1, 1, tzinfo=raised_at.tzinfo)) // (
        timedelta(milliseconds=1)
    )


class _Raised:
    """Reads ``hub.alerts`` from its end: each raise's event ids, and the raises told to the
    practitioners' organisations."""

    def __init__(self, settings: Settings) -> None:
        self.serde = Serde(SchemaRegistry(settings))
        topic = f"{settings.topic_prefix}hub.alerts"
        self.consumer = from_the_end(settings, topic, "bench-alerts")
        self.events: dict[Raise, list[str]] = {}
        self.told: set[Raise] = set()

    def poll(self, timeout_s: float) -> None:
        for message in self.consumer.consume(num_messages=1_000, timeout=timeout_s):
            value = message.value()
            if message.error() is not None or value is None:
                continue
            alert = self.serde.decode(value, Alert)
            created = alert.created_at - datetime(1970, 1, 1, tzinfo=alert.created_at.tzinfo)
            key = (alert.alert_id, created // timedelta(milliseconds=1))
            self.events[key] = alert.event_ids
            if set(alert.recipients) & set(PRACTITIONERS):
                self.told.add(key)

    def close(self) -> None:
        self.consumer.close()
