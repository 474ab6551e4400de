"""Topic settings that bound how long personal data stays on the hub's topics."""

from hub._admin import retention_config
from hub.config import Settings

HOUR_MS = 3_600_000


def test_compacted_topics_roll_compact_and_drop_tombstones_within_the_segment_time() -> None:
    config = retention_config(
        Settings(compacted_segment_hours=2), compact=True, retention_hours=None
    )
    assert config == {
        "cleanup.policy": "compact",
        "segment.ms": str(2 * HOUR_MS),
        "max.compaction.lag.ms": str(2 * HOUR_MS),
        "delete.retention.ms": str(2 * HOUR_MS),
    }


def test_other_topics_delete_after_their_retention_in_segments_of_a_day_at_most() -> None:
    settings = Settings()
    assert retention_config(settings, compact=False, retention_hours=168) == {
        "retention.ms": str(168 * HOUR_MS),
        "segment.ms": str(24 * HOUR_MS),
    }
    assert retention_config(settings, compact=False, retention_hours=0.5)["segment.ms"] == str(
        HOUR_MS // 2
    )
    assert retention_config(settings, compact=False, retention_hours=None) == {}
