"""Run one hub worker: the Faust app with the gate, view and API."""

from __future__ import annotations

import faust

from hub.app import Hub
from hub.catalogue import install_catalogue_page
from hub.config import Settings
from hub.ingest import install_ingest
from hub.registry_api import install_registry_api
from hub.web import install_web

__all__ = ["build_hub", "run_worker"]


def build_hub(settings: Settings) -> Hub:
    """The hub with its web API installed (separate so tests can build one in-process)."""
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    hub = Hub(settings)
    hub.prepare()
    install_web(hub)
    install_registry_api(hub)
    install_catalogue_page(hub)
    install_ingest(hub)
    return hub


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker until interrupted (blocks; Faust handles signals)."""
    hub = build_hub(settings)
    worker = faust.Worker(hub.app, loglevel=loglevel, quiet=True)
    # Faust's progress spinner, kept for log levels of WARNING and above, sets the root
    # logger to DEBUG so it can spin on every record: each debug call in aiokafka and Faust
    # then builds a log record (about a tenth of a busy worker's time; `placehub bench`).
    worker.spinner = None
    worker.execute_from_commandline()
