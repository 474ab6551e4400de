"""What ``placehub replay`` deletes (``hub.replay.derived_topics``): what the hub derives,
never what partners wrote or the audit trail."""

from __future__ import annotations

from hub.config import Settings
from hub.replay import derived_topics
from hub.topics import Topics


def test_replay_deletes_the_derived_topics_and_keeps_partners_and_the_audit() -> None:
    settings = Settings(topic_prefix="t1.", app_id="placehub-t1")
    names = Topics(settings.topic_prefix)
    partner = names.partner("council-housing")
    changelog = "placehub-t1-views-changelog"
    existing = {
        names.events,
        names.quarantine,
        names.dlq,
        names.patterns,
        names.audit,
        names.consent,
        partner,
        changelog,
        "t2.hub.patterns",  # another hub's
    }
    deleted = derived_topics(settings, existing)
    assert set(deleted) == {
        names.events,
        names.quarantine,
        names.dlq,
        names.patterns,
        changelog,
    }
