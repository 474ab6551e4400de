"""A hub worker for the benchmarks: ``placehub worker`` plus two bench-only switches.

- ``PLACEHUB_STORE`` (``memory://`` or ``rocksdb://``) is applied to the Faust app even while
  ``hub.app`` still builds it with ``store="memory://"``; once the app passes
  ``store=settings.store`` this bridge changes nothing.
- ``PLACEHUB_BENCH_APP_OPTIONS='{"producer_linger_ms": 5}'`` (JSON) adds Faust app settings,
  to try a tuning before proposing it for ``hub.app``.
- ``PLACEHUB_BENCH_PROFILE=<path>`` runs the worker under pyinstrument and writes a text
  report to ``<path>.txt``, an HTML one to ``<path>.html`` and the session to
  ``<path>.pyisession`` when it stops.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faust

from hub.config import load_settings
from hub.worker import run_worker

__all__ = ["main"]


def _apply_store(store: str, options: dict[str, Any]) -> None:
    base = faust.App

    class StoreApp(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["store"] = store
            kwargs.update(options)
            super().__init__(*args, **kwargs)

    faust.App = StoreApp  # type: ignore[misc]


def main() -> None:
    """Run one worker until it is stopped (SIGTERM), profiled if asked."""
    settings = load_settings()
    _apply_store(settings.store, json.loads(os.environ.get("PLACEHUB_BENCH_APP_OPTIONS", "{}")))
    profile = os.environ.get("PLACEHUB_BENCH_PROFILE")
    if not profile:
        run_worker(settings, loglevel="warning")
        return
    from pyinstrument import Profiler  # only when profiling: a dev-only dependency

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        run_worker(settings, loglevel="warning")
    finally:
        profiler.stop()
        path = Path(profile)
        session = profiler.last_session
        if session is not None:  # re-render later: pyinstrument --load <path>.pyisession
            session.save(str(path.with_suffix(".pyisession")))
        path.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
        path.with_suffix(".html").write_text(profiler.output_html())


if __name__ == "__main__":
    main()
