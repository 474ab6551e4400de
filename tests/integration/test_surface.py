"""The worker's HTTP surface against real workers and the broker: what answers without a
token (health, the catalogue), /metrics behind its scrape token, where the worker listens,
and workers calling each other with a credential of their own."""

from __future__ import annotations

import time

import psutil
import requests

from hub.routing import ASSERTION_HEADER, WorkerCredential
from hub.users import UserDirectory
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import WorkerProcess, free_port, worker_env

SCRAPE_TOKEN = "scrape-token-for-this-test-0123456789"


def test_health_names_nothing_internal_without_an_admin_token(worker: WorkerProcess) -> None:
    anyone = worker.get("/v1/health", token=None)
    assert anyone.status_code == 200 and anyone.json() == {"status": "ok"}
    partner = worker.get("/v1/health", token="demo-partner-health")
    assert partner.json() == {"status": "ok"}
    admin = worker.get("/v1/health").json()
    assert admin == {"status": "ok", "crashed_agents": [], "stalled_stages": {}}


def test_metrics_need_the_scrape_token_and_show_no_small_person_counts(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker(metrics_token=SCRAPE_TOKEN)
    for token in (None, "wrong", "demo-partner-health", "demo-steward"):
        assert worker.get("/metrics", token=token).status_code == 401, token
    scraped = worker.get("/metrics", token=SCRAPE_TOKEN)
    assert scraped.status_code == 200
    assert worker.get("/metrics").status_code == 200  # an admin's own token
    # Every partner shows its person-level fates from the start, so the first erasure
    # makes no series appear (and counts under 5 show 0).
    for partner in ("council-housing", "city-health"):
        for fate in ("erased", "dropped", "expired"):
            line = f'placehub_records_settled_total{{fate="{fate}",partner="{partner}"}} 0.0'
            assert line in scraped.text
    assert "_created" not in scraped.text


def test_the_worker_listens_where_the_settings_say(worker: WorkerProcess) -> None:
    """Faust listened on 0.0.0.0 although the settings (and the README) said 127.0.0.1."""
    assert worker.process is not None
    port = worker.settings.web_port
    listening = [
        c.laddr
        for c in psutil.Process(worker.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening and {address.ip for address in listening} == {"127.0.0.1"}


def test_workers_call_each_other_with_their_own_credential(make_worker: WorkerFactory) -> None:
    """The books add up every worker's share, asked with a signed assertion; a worker's
    share is refused to a user's token (which the old code forwarded to peer URLs)."""
    first = make_worker()
    second = make_worker(web_port=free_port(), state_dir=first.settings.state_dir.parent / "2")
    first.wait_for("/v1/health", lambda r: r.ok, expecting="the group rebalanced with both")
    # 503 if the second worker's share could not be had.
    assert first.get("/v1/partners/status", token="demo-steward").status_code == 200
    for path in ("/v1/_books", "/v1/_books/city-health"):
        assert second.get(path).status_code == 401, path  # the admin's bearer token
        assert second.get(path, token=None).status_code == 401, path
    secret = worker_env(second.settings)["PLACEHUB_WORKER_SECRET"].encode()
    steward = UserDirectory.load(second.settings.users_file).by_id("jo.steward")
    signed = WorkerCredential(secret, 30).sign(steward, "GET", "/v1/_books", time.time())

    def status(path: str, assertion: str) -> int:
        headers = {ASSERTION_HEADER: assertion}
        return requests.get(f"{second.url}{path}", headers=headers, timeout=10).status_code

    assert status("/v1/_books", signed) == 200
    assert status("/v1/_books/city-health", signed) == 401  # signed for another path
    stranger = WorkerCredential(b"x" * 32, 30).sign(steward, "GET", "/v1/_books", time.time())
    assert status("/v1/_books", stranger) == 401


def test_the_catalogue_needs_no_token(worker: WorkerProcess) -> None:
    assert requests.get(f"{worker.url}/catalogue", timeout=10).status_code == 200
