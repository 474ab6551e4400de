"""The worker's static group membership (``hub.runtime.transport``): its name, and that a worker
stopping cleanly leaves the group after its consumer has stopped. No broker."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from hub.app import Hub
from hub.config import PROJECT_ROOT, Settings
from hub.runtime import transport
from hub.runtime.transport import member_name


def _hub(tmp_path: Path, **settings: Any) -> Hub:
    # Nothing connects until the app starts, so an unreachable broker is fine here.
    return Hub(Settings(bootstrap_servers="127.0.0.1:1", state_dir=tmp_path, **settings))


def test_the_name_is_stable_across_restarts_and_legal_for_kafka(tmp_path: Path) -> None:
    name = member_name(_hub(tmp_path).app)
    assert name == member_name(_hub(tmp_path).app)
    assert re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", name), name
    assert name.startswith("http_127.0.0.1_6066-")


def test_a_worker_at_another_url_or_reading_other_topics_has_another_name(
    tmp_path: Path,
) -> None:
    """Faust's assignor asserts the URL in an assignment, and a static member rejoining
    under its old name gets its old assignment: both must change the name."""
    base = member_name(_hub(tmp_path).app)
    assert member_name(_hub(tmp_path, web_port=6067).app) != base
    more_partners = tmp_path / "partners.yaml"  # every partner a user names, and one more
    more_partners.write_text(
        (PROJECT_ROOT / "deploy/local/partners.yaml").read_text()
        + "  - id: valley-trust\n    name: Valley Trust\n    sector: health\n"
    )
    assert member_name(_hub(tmp_path, partners_file=more_partners).app) != base


def test_the_workers_consumer_joins_as_a_static_member(tmp_path: Path) -> None:
    hub = _hub(tmp_path)

    async def consumer_of_worker() -> Any:
        thread = hub.app.consumer._thread  # type: ignore[attr-defined]
        return thread._create_worker_consumer(hub.app.transport)

    consumer = asyncio.run(consumer_of_worker())
    assert consumer._group_instance_id == member_name(hub.app)


class _Coordinator:
    def __init__(self, member_id: str) -> None:
        self.group_id = "placehub"
        self.member_id = member_id


class _StoppingConsumer:
    """Records its stop in ``calls`` and, like aiokafka, forgets its member id then."""

    def __init__(self, calls: list[Any], member_id: str, instance_id: str | None) -> None:
        self._coordinator = _Coordinator(member_id)
        self._group_instance_id = instance_id
        self.calls = calls

    async def stop(self) -> None:
        self.calls.append("consumer stopped")
        self._coordinator.member_id = ""


def _record_leaves(monkeypatch: pytest.MonkeyPatch, calls: list[Any]) -> None:
    def leave_group(*args: Any) -> bool:
        calls.append(args)
        return True

    monkeypatch.setattr(transport, "leave_group", leave_group)


def _stop_thread_of(hub: Hub, consumer: _StoppingConsumer) -> None:
    thread = hub.app.consumer._thread  # type: ignore[attr-defined]
    thread._consumer = consumer
    asyncio.run(thread.on_thread_stop())


def test_a_stopping_worker_leaves_its_group_by_name_once_its_consumer_has_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left before the consumer stops, it would rejoin; the member id read before the stop
    (aiokafka forgets it) lets the broker refuse to remove a newer process of that name."""
    calls: list[Any] = []
    _record_leaves(monkeypatch, calls)
    hub = _hub(tmp_path)
    _stop_thread_of(hub, _StoppingConsumer(calls, member_id="m-1", instance_id="w-1"))
    assert calls == ["consumer stopped", (hub.settings, "placehub", "m-1", "w-1")]


@pytest.mark.parametrize(
    ("member_id", "instance_id"), [("", "w-1"), ("m-1", None)], ids=["never joined", "dynamic"]
)
def test_a_worker_that_never_joined_or_is_dynamic_sends_no_leave_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member_id: str, instance_id: str | None
) -> None:
    calls: list[Any] = []
    _record_leaves(monkeypatch, calls)
    _stop_thread_of(_hub(tmp_path), _StoppingConsumer(calls, member_id, instance_id))
    assert calls == ["consumer stopped"]


def test_a_leave_that_cannot_reach_the_broker_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "LEAVE_TIMEOUT_MS", 200)
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    assert transport.leave_group(settings, "placehub", "m-1", "w-1") is False
    assert "w-1 stays in group placehub until its session expires" in caplog.text
