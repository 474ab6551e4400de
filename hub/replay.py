"""``placehub replay``: rebuild every derived topic and table from the partners' topics.

Derived state (hub.events, quarantine, DLQ, the Faust changelogs and internal topics, the
consumer group's offsets) is deleted; the inputs (partners' event and link topics,
consent.records, _schemas) and the audit trail are kept. The next worker start reads the
inputs from the beginning, and because every rule is order-independent it ends in the
same state a never-interrupted run would have reached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError

from hub.config import Settings
from hub.errors import BrokerError, SetupError
from hub.kafka_clients import kafka_python_options
from hub.topics import Topics

__all__ = ["derived_topics", "replay"]


def derived_topics(settings: Settings, existing: set[str]) -> list[str]:
    """The topics ``replay`` deletes: everything the hub derives, nothing partners wrote."""
    names = Topics(settings.topic_prefix)
    # hub.patterns too: the patterns stage sends only cells whose published value changed
    # against its own table, so after a replay a cell that no longer exists would stay.
    derived = {names.events, names.quarantine, names.dlq, names.patterns}
    derived |= {t for t in existing if t.startswith(f"{settings.app_id}-")}
    return sorted(derived & existing)


def replay(settings: Settings, progress: Callable[[str], None] = print) -> list[str]:
    """Delete derived state so workers rebuild it; refuses while any worker is running."""
    try:
        admin = KafkaAdminClient(
            **kafka_python_options(settings),
            request_timeout_ms=settings.request_timeout_ms,
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        group = admin.describe_groups([settings.app_id]).get(settings.app_id, {})
        state = group.get("group_state") or "Dead"
        if group.get("members") or state not in ("Empty", "Dead"):
            raise SetupError(_still_running(settings.app_id, state, group.get("members") or []))
        doomed = derived_topics(settings, set(admin.list_topics()))
        if doomed:
            progress(f"deleting {len(doomed)} derived topics")
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(doomed)
            _wait_until_gone(admin, doomed, timeout_s=60)
        admin.delete_groups([settings.app_id])  # reports, not raises, a group never created
        progress("derived state deleted; start the workers to rebuild it from the partner topics")
        return doomed
    finally:
        admin.close()


def _still_running(app_id: str, state: str, members: list[dict[str, Any]]) -> str:
    # A worker names itself by its URL (runtime.transport.member_name): it says where it runs.
    names = sorted(m.get("group_instance_id") or m.get("member_id") or "?" for m in members)
    return (
        f"workers of {app_id} are running (group {state.lower()}"
        f"{'; members: ' + ', '.join(names) if names else ''}); stop them before replay. "
        "A worker stopped cleanly leaves the group at once, but one that did not stop "
        "cleanly (kill -9, a crash, a lost host) stays a member until its session expires, "
        "up to 60 s: if none is running any more, retry then"
    )


def _wait_until_gone(admin: KafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while set(topics) & set(admin.list_topics()):
        if time.monotonic() > deadline:
            raise BrokerError(f"topics still present after {timeout_s:.0f}s: {sorted(topics)}")
        time.sleep(0.2)
