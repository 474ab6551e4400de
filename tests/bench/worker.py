"""A hub worker for the benchmarks: ``placehub worker`` plus two bench-only switches.

(``PLACEHUB_STORE``, ``memory://`` or ``rocksdb://``, is an ordinary setting that
``placehub worker`` honours too.)

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


def _apply_options(options: dict[str, Any]) -> None:
    """Make every Faust app built from here on take ``options`` (to try a tuning)."""
    base = faust.App

    class TunedApp(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, **options})

    faust.App = TunedApp  # type: ignore[misc]


def main() -> None:
    """Run one worker until it is stopped (SIGTERM), profiled if asked."""
    settings = load_settings()
    options = os.environ.get("PLACEHUB_BENCH_APP_OPTIONS")
    if options:
        _apply_options(json.loads(options))
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
