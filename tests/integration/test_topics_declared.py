"""A fresh deployment's topics exist, with the right shape, before Faust subscribes.

Without this, a worker's first metadata could miss Faust's changelogs and an agent would
die of PartitionsMismatch while the worker kept running (seen in the benchmarks).
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from hub.app import Hub
from hub.config import Settings


def test_prepare_creates_every_changelog_compacted_with_its_partitions(
    hub_settings: Settings,
) -> None:
    hub = Hub(hub_settings)
    hub.prepare()

    admin = KafkaAdminClient(bootstrap_servers=hub_settings.bootstrap_servers)
    try:
        expected = {
            table.changelog_topic.get_topic_name(): table.partitions or hub_settings.partitions
            for table in hub.app.tables.values()
        }
        # consents, ledger, fates, marks, held, views, view-refs (the source_ref lookup's
        # index), linked, alerts, pattern-people, pattern-counts, and identity's tokens,
        # people, review and withdrawn consents
        assert len(expected) == 15
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(expected))}
        assert described == expected
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, name, configs=["cleanup.policy"])
            for name in expected
        ]
        policies = {
            name: config["cleanup.policy"]["value"]
            for name, config in admin.describe_configs(resources)["topic"].items()
        }
        assert policies == dict.fromkeys(expected, "compact")
    finally:
        admin.close()
