"""Topic creation: the hub creates its own topics with the settings it needs."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from hub.config import Settings
from hub.errors import BrokerError
from hub.topics import Topics

__all__ = ["declare_topics", "ensure_topic"]

_created: set[tuple[str, str]] = set()


def ensure_topic(settings: Settings, name: str, *, partitions: int, compact: bool = False) -> None:
    """Create ``name`` if it does not exist yet (idempotent, cached per process)."""
    if (settings.bootstrap_servers, name) in _created:
        return
    config = {"cleanup.policy": "compact"} if compact else {}
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            request_timeout_ms=settings.request_timeout_ms,
            bootstrap_timeout_ms=settings.request_timeout_ms,
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        admin.create_topics(
            [NewTopic(name, partitions, settings.replication_factor, topic_configs=config)]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    _created.add((settings.bootstrap_servers, name))


def declare_topics(settings: Settings, partner_topics: list[str], internal: dict[str, int]) -> None:
    """Create every topic a worker reads or writes, with the right partitions and policy.

    ``internal`` maps the deployment's internal topics to their partition counts.
    """
    names = Topics(settings.topic_prefix)
    ensure_topic(settings, names.schemas, partitions=1, compact=True)
    ensure_topic(settings, names.consent, partitions=settings.partitions, compact=True)
    contract = [names.events, names.quarantine, names.dlq, names.audit, names.identity_links]
    for name in [*partner_topics, *contract]:
        ensure_topic(settings, name, partitions=settings.partitions)
    for name, partitions in internal.items():
        ensure_topic(settings, name, partitions=partitions)
