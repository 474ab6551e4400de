"""``placehub demo``: the whole place on one machine, with directions for where to look.

Starts the local broker, one worker (as a child process, so its logs stay out of the
way), publishes a synthetic place through the SDK, waits until a person's joined-up view
is readable and housing has alerts, prints where to open the practitioners' and the
stewards' pages (and the tokens to sign in with) and how to read the API, then keeps the
place busy until Ctrl-C, so new alerts keep arriving on the page.

The demo is one of the two places (with the tests) where the public test place key is
allowed: it says so for itself and its worker (``PLACEHUB_ALLOW_TEST_KEY``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.pseudonymise import load_place_key
from connectors.simulate import Place
from hub import broker
from hub.config import Settings
from hub.errors import SetupError

__all__ = ["run_demo", "wait_for_http"]

DEMO_TOKEN = "demo-practitioner-housing"
STEWARD_TOKEN = "demo-steward"


def _get(url: str, token: str | None = None) -> bytes | None:
    """The body of GET ``url`` if it answers 200, else None (not up yet, or refused)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            body: bytes = r.read()
            return body
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_for_http(url: str, timeout_s: float, token: str | None = None) -> bytes:
    """GET ``url`` until it answers 200 (SetupError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while (body := _get(url, token)) is None:
        if time.monotonic() > deadline:
            raise SetupError(f"{url} did not answer within {timeout_s:.0f}s")
        time.sleep(0.5)
    return body


def _a_person_housing_serves(base: str, place: Place, key: bytes) -> tuple[str, dict[str, Any]]:
    """A simulated person the demo's housing practitioner may read (one housing is
    involved with), and their view as that practitioner sees it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for person in place.people[:50]:
            url = f"{base}/v1/people/{Place.person_id(person, key)}"
            body = _get(url, DEMO_TOKEN)  # None: housing does not serve them (yet)
            if body is not None:
                return url, dict(json.loads(body))
        time.sleep(1)
    raise SetupError("no simulated person's view was readable by housing within 60s")


def _housings_alerts(base: str, timeout_s: float = 60) -> int:
    """How many alerts housing's inbox holds, once it holds any (the simulated place raises
    them as its timelines fill; SetupError if none within ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = _get(f"{base}/v1/alerts", DEMO_TOKEN)
        alerts = len(json.loads(body)["alerts"]) if body is not None else 0
        if alerts:
            return alerts
        if time.monotonic() > deadline:
            raise SetupError(f"no alert reached housing's inbox within {timeout_s:.0f}s")
        time.sleep(1)


def run_demo(settings: Settings, people: int, rate_per_s: float) -> int:
    """Run the simulated place until interrupted; returns the exit code."""
    # SIGTERM (e.g. from `timeout` or a supervisor) must also stop the worker child.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    settings = settings.model_copy(update={"allow_test_key": True})
    place_key = load_place_key(settings)  # a real key when one is set, else the test key
    broker.start(settings)
    log_path = settings.state_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PLACEHUB_ALLOW_TEST_KEY": "1"},
        )
    base = f"http://{settings.web_host}:{settings.web_port}"
    try:
        print(f"worker starting (log: {log_path}) ...")
        wait_for_http(f"{base}/v1/health", timeout_s=120)
        place = Place(seed=7, people=people)
        counts = place.publish(settings, events=people * 5)
        print(f"published {sum(counts.values())} events from {len(counts)} partners")
        url, view = _a_person_housing_serves(base, place, place_key.secret)
        alerts = _housings_alerts(base)
        print(
            f"\nplacehub is running. Open the practitioners' page and sign in with the token "
            f"{DEMO_TOKEN}:\n  {base}/practitioner\n"
            f"({alerts} alerts for housing so far; new ones appear there as they are raised.)\n"
            f"A simulated person, {view['event_count']} events from "
            f"{len(view['partners'])} partners so far:\n"
            f"  curl -H 'Authorization: Bearer {DEMO_TOKEN}' {url}\n"
            f"Alerts housing is told of:\n"
            f"  curl -H 'Authorization: Bearer {DEMO_TOKEN}' {base}/v1/alerts\n"
            f"Stewards' page (token {STEWARD_TOKEN}): {base}/steward\n"
            f"Place patterns, disclosure-controlled:\n"
            f"  curl -H 'Authorization: Bearer {STEWARD_TOKEN}' '{base}/v1/patterns?window=month'\n"
            f"Metrics:  curl -H 'Authorization: Bearer demo-admin' {base}/metrics\n"
            f"Publishing {rate_per_s:g} events/s; Ctrl-C to stop (the broker keeps running: "
            f"'placehub broker stop').\n"
        )
        while True:
            # Each round's events fall in the last hour: restarted 60 days back, as the first
            # load is, they landed in pattern windows long closed and were counted late.
            place.publish(
                settings,
                events=max(1, int(rate_per_s * 10)),
                rate_per_s=rate_per_s,
                consents=False,
                start=datetime.now(UTC) - timedelta(hours=1),
            )
    except KeyboardInterrupt:
        print("stopping the worker ...")
        return 0
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
