"""Shared test set-up. In CI (``CI`` set) a skipped test fails the run: nothing may hide."""

from __future__ import annotations

import os

import pytest

# The tests run on the public test place key (connectors and workers refuse it otherwise).
os.environ.setdefault("PLACEHUB_ALLOW_TEST_KEY", "1")

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which fails the run: {_skipped}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
