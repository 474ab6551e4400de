"""Topic creation: the hub creates its own topics with the settings it needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from hub.config import Settings
from hub.errors import BrokerError
from hub.kafka_clients import kafka_python_options
from hub.topics import Topics

__all__ = ["admin_client", "declare_topics", "ensure_partner_topics", "ensure_topic"]

_created: set[tuple[str, str]] = set()


def _hours_ms(hours: float) -> str:
    return str(int(hours * 3600 * 1000))


def retention_config(
    settings: Settings, compact: bool, retention_hours: float | None
) -> dict[str, str]:
    """The topic settings that bound how long personal data stays: compacted topics roll
    segments (compaction never touches the active one) and drop tombstones after a while;
    the others delete after ``retention_hours``."""
    if compact:
        segment = _hours_ms(settings.compacted_segment_hours)
        return {
            "cleanup.policy": "compact",
            "segment.ms": segment,
            # Compacted within this lag however little of the log is dirty (an erasure is
            # a few records in a large changelog), and tombstones gone as long after.
            "max.compaction.lag.ms": segment,
            "delete.retention.ms": segment,
        }
    if retention_hours is None:
        return {}
    retention = _hours_ms(retention_hours)
    return {"retention.ms": retention, "segment.ms": _hours_ms(min(retention_hours, 24))}


def ensure_topic(
    settings: Settings,
    name: str,
    *,
    partitions: int,
    compact: bool = False,
    retention_hours: float | None = None,
) -> None:
    """Create ``name`` if it does not exist yet (idempotent, cached per process)."""
    if (settings.bootstrap_servers, name) in _created:
        return
    config = retention_config(settings, compact, retention_hours)
    with admin_client(settings) as admin:
        try:
            admin.create_topics(
                [NewTopic(name, partitions, settings.replication_factor, topic_configs=config)]
            )
        except TopicAlreadyExistsError:
            if config:  # a deployment's retention can change: its topics follow at start
                resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=config)
                admin.alter_configs([resource])
    _created.add((settings.bootstrap_servers, name))


@contextlib.contextmanager
def admin_client(settings: Settings) -> Iterator[KafkaAdminClient]:
    """An admin client of ``settings`` (closed after use); BrokerError if Kafka cannot be
    reached within the request timeout."""
    try:
        admin = KafkaAdminClient(
            **kafka_python_options(settings),
            request_timeout_ms=settings.request_timeout_ms,
            bootstrap_timeout_ms=settings.request_timeout_ms,
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        yield admin
    finally:
        admin.close()


def ensure_partner_topics(settings: Settings, partner_id: str) -> None:
    """Create a partner's topics: its events and links (kept as partner data is), and its
    SQL-poll positions (compacted). The hub makes them: a partner may create no topic."""
    names = Topics(settings.topic_prefix)
    kept = settings.partner_retention_hours
    for name in (names.partner(partner_id), names.partner_links(partner_id)):
        ensure_topic(settings, name, partitions=settings.partitions, retention_hours=kept)
    ensure_topic(settings, names.partner_positions(partner_id), partitions=1, compact=True)


def declare_topics(settings: Settings, partner_ids: list[str], internal: dict[str, int]) -> None:
    """Create every topic a worker reads or writes, with the right partitions and policy.

    ``partner_ids`` are the place's partners (``ensure_partner_topics``); ``internal`` maps
    the deployment's internal topics to their partition counts.
    """
    names = Topics(settings.topic_prefix)
    ensure_topic(settings, names.schemas, partitions=1, compact=True)
    ensure_topic(settings, names.consent, partitions=settings.partitions, compact=True)
    ensure_topic(settings, names.alerts, partitions=settings.partitions, compact=True)
    n, events = settings.partitions, settings.events_retention_hours
    for partner_id in partner_ids:
        ensure_partner_topics(settings, partner_id)
    for name in [names.events, names.quarantine, names.dlq]:
        ensure_topic(settings, name, partitions=n, retention_hours=events)
    ensure_topic(settings, names.audit, partitions=n)  # the audit trail: the broker's default
    for name, partitions in internal.items():
        ensure_topic(
            settings, name, partitions=partitions, retention_hours=settings.hop_retention_hours
        )
