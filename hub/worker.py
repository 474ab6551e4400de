"""Run one hub worker: the Faust app with the gate, view and API."""

from __future__ import annotations

import gc

import faust

from connectors.pseudonymise import load_place_key
from hub.access_history import install_access_history
from hub.alert_status_api import install_alert_status_api
from hub.alert_stream import install_alert_stream
from hub.alerts_api import install_alerts_api
from hub.app import Hub
from hub.catalogue import install_catalogue_page
from hub.config import Settings
from hub.feedback import install_feedback
from hub.flows_api import install_flows_api
from hub.ingest import install_ingest
from hub.lookup import install_lookup
from hub.owner_reads import install_owner_reads
from hub.partner_book import install_partner_book
from hub.patterns_api import install_patterns_api
from hub.people_api import install_people_api
from hub.practitioner_page import install_practitioner_page
from hub.registry_api import install_registry_api
from hub.responses_api import install_responses_api
from hub.review_api import install_review_api
from hub.routing import install_peers
from hub.steward_page import install_steward_page
from hub.web import install_web
from hub.webhooks import install_webhooks

__all__ = ["build_hub", "run_worker"]

# Young collections every 20,000 allocations rather than 700: a busy worker allocates
# short-lived records by the million, and the default paused it every few events.
GC_THRESHOLDS = (20_000, 10, 10)


def build_hub(settings: Settings) -> Hub:
    """The hub with its web API installed (separate so tests can build one in-process)."""
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    hub = Hub(settings)
    # Faust listens on every interface (0.0.0.0) unless told otherwise: only where the
    # settings say (127.0.0.1 by default).
    hub.app.conf.web_bind = settings.web_bind_host
    install_peers(hub)  # reads the worker secret: a bad one stops the worker here
    hub.prepare()
    install_web(hub)
    install_people_api(hub)
    install_lookup(hub)
    install_alerts_api(hub)
    install_alert_stream(hub)
    install_alert_status_api(hub)
    install_feedback(hub)
    install_practitioner_page(hub)
    install_steward_page(hub)
    install_access_history(hub)
    install_owner_reads(hub)
    install_patterns_api(hub)
    install_flows_api(hub)
    install_responses_api(hub)
    install_registry_api(hub)
    install_review_api(hub)
    install_catalogue_page(hub)
    install_ingest(hub)
    install_partner_book(hub)
    install_webhooks(hub)  # reads the webhook secrets: a missing one stops the worker here
    return hub


def check_place_key(settings: Settings) -> None:
    """The hub needs no place key (partners tokenise before sending, and a hub without it
    cannot reverse a token); one given to it must still not be short or the public test
    key (``ConfigError`` naming the setting)."""
    if settings.place_key_file is not None or settings.place_key is not None:
        load_place_key(settings)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker until interrupted (blocks; Faust handles signals)."""
    check_place_key(settings)
    hub = build_hub(settings)
    gc.freeze()  # start-up objects (schemas, Faust's machinery) leave the collector's scans
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(hub.app, loglevel=loglevel, quiet=True)
    # Faust's progress spinner, kept for log levels of WARNING and above, sets the root
    # logger to DEBUG so it can spin on every record: each debug call in aiokafka and Faust
    # then builds a log record (about a tenth of a busy worker's time; `placehub bench`).
    worker.spinner = None
    worker.execute_from_commandline()
