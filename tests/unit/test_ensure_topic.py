"""``hub._admin.ensure_topic`` for a principal that may not create topics (a partner's or a
connector's, hub.kafka_acls): a topic that is there will do; one that is not is a
BrokerError naming it. A fake admin client; no broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from kafka.errors import TopicAuthorizationFailedError

import hub._admin
from hub.config import Settings
from hub.errors import BrokerError


class _NotAllowedToCreate:
    """An admin client of a principal without CREATE that sees ``visible`` topics."""

    visible: ClassVar[list[str]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options

    def create_topics(self, topics: list[Any]) -> None:
        raise TopicAuthorizationFailedError("Authorization failed.")

    def list_topics(self) -> list[str]:
        return self.visible

    def close(self) -> None:
        pass


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(hub._admin, "KafkaAdminClient", _NotAllowedToCreate)
    monkeypatch.setattr(hub._admin, "_created", set())
    return Settings(bootstrap_servers="127.0.0.1:1")


def test_a_topic_that_is_there_will_do(settings: Settings) -> None:
    _NotAllowedToCreate.visible = ["partner.city-health.events"]
    hub._admin.ensure_topic(settings, "partner.city-health.events", partitions=4)
    assert ("127.0.0.1:1", "partner.city-health.events") in hub._admin._created


def test_a_topic_that_is_not_there_is_named(settings: Settings) -> None:
    _NotAllowedToCreate.visible = []
    with pytest.raises(BrokerError) as caught:
        hub._admin.ensure_topic(settings, "partner.city-health.events", partitions=4)
    assert str(caught.value) == (
        "partner.city-health.events: does not exist, and this principal may not create it; "
        "the hub's workers create it when they start"
    )
    assert not hub._admin._created
