"""The worker's static group membership name (``hub.transport.member_name``), no broker."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from hub.app import Hub
from hub.config import Settings
from hub.transport import member_name


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
    fewer_partners = tmp_path / "partners.yaml"
    fewer_partners.write_text(
        "partners:\n  - id: council-housing\n    name: Council\n    sector: housing\n"
    )
    assert member_name(_hub(tmp_path, partners_file=fewer_partners).app) != base


def test_the_workers_consumer_joins_as_a_static_member(tmp_path: Path) -> None:
    hub = _hub(tmp_path)

    async def consumer_of_worker() -> Any:
        thread = hub.app.consumer._thread  # type: ignore[attr-defined]
        return thread._create_worker_consumer(hub.app.transport)

    consumer = asyncio.run(consumer_of_worker())
    assert consumer._group_instance_id == member_name(hub.app)
