"""What every stage is configured with: names, partition count, the codec and the rules.

Built once per worker from the settings; holds no state that changes while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from hub.agreements import AgreementBook
from hub.alerts import RuleBook
from hub.serde import Serde
from hub.topics import Topics

__all__ = ["Context", "Internal"]


@dataclass(frozen=True)
class Internal:
    """The names of one deployment's internal topics (prefixed with its app id)."""

    app_id: str

    def name(self, suffix: str) -> str:
        return f"{self.app_id}-{suffix}"

    @property
    def identity(self) -> str:
        return self.name("identity")

    @property
    def view(self) -> str:
        return self.name("view")

    @property
    def transfer(self) -> str:
        return self.name("view-transfer")

    @property
    def control(self) -> str:
        return self.name("release-control")

    @property
    def alerts(self) -> str:
        return self.name("alerts")

    @property
    def patterns(self) -> str:
        """People's timelines for the patterns, partitioned by person."""
        return self.name("patterns")

    @property
    def pattern_deltas(self) -> str:
        """Changes to the patterns' true counts, partitioned by window."""
        return self.name("pattern-deltas")


@dataclass(frozen=True)
class Context:
    """A stage's fixed inputs: topics, partitions, codec, agreements, alert rules and time
    limits (``patterns_grace``: how long after a window's end late events still count)."""

    topics: Topics
    internal: Internal
    partitions: int
    serde: Serde
    agreements: AgreementBook
    consent_retention: timedelta
    quarantine_hold: timedelta
    rules: RuleBook = field(default_factory=lambda: RuleBook([]))  # the alert rules
    patterns_grace: timedelta = timedelta(days=14)
    patterns: bool = True  # whether the patterns stages run (Settings.patterns_enabled)
    flows_within: timedelta = timedelta(days=30)  # Settings.flows_within_days

    def retention(self, basis: str) -> timedelta:
        """How long an entry shared under ``basis`` may be kept."""
        return self.agreements.retention(basis, self.consent_retention)
