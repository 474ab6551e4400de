"""Benchmarks (``placehub bench``): placehub's speed beside raw-client baselines from the same run.

Not part of the test run. Reading guide: ``run`` orchestrates and reports; ``harness`` has
the shared pieces (isolated hubs, worker processes, preloading, percentiles); one module
per scenario: ``ingest``, ``pipeline``, ``latency``, ``query``, ``scale``; ``worker`` and
``loadgen`` are the child processes they start.
"""

__all__: list[str] = []
