"""Topic names from the design's contract, with the deployment's prefix applied."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PARTNER_ID_PATTERN", "Topics"]

# Partner ids become part of topic names, so they are restricted to safe characters.
PARTNER_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class Topics:
    """The hub's topic names for one deployment (``prefix`` lets tests share a broker)."""

    prefix: str = ""

    def partner(self, partner_id: str) -> str:
        """The raw topic only ``partner_id`` may write to."""
        return f"{self.prefix}partner.{partner_id}.events"

    def partner_of(self, topic: str) -> str | None:
        """The partner id a partner's events topic belongs to, or None for other topics."""
        return self._owner(topic, "events")

    def partner_links(self, partner_id: str) -> str:
        """The topic only ``partner_id`` may write its identity links to."""
        return f"{self.prefix}partner.{partner_id}.links"

    def partner_positions(self, partner_id: str) -> str:
        """Where ``partner_id``'s SQL-poll connectors keep their positions (compacted): its
        own, so a connector reads no other partner's."""
        return f"{self.prefix}partner.{partner_id}.positions"

    def links_partner_of(self, topic: str) -> str | None:
        """The partner id a partner's links topic belongs to, or None for other topics."""
        return self._owner(topic, "links")

    def _owner(self, topic: str, kind: str) -> str | None:
        match = re.fullmatch(rf"{re.escape(self.prefix)}partner\.([a-z0-9-]+)\.{kind}", topic)
        return match.group(1) if match else None

    @property
    def consent(self) -> str:
        return f"{self.prefix}consent.records"

    @property
    def events(self) -> str:
        return f"{self.prefix}hub.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}hub.dlq"

    @property
    def quarantine(self) -> str:
        return f"{self.prefix}hub.quarantine"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}hub.alerts"

    @property
    def alert_feedback(self) -> str:
        return f"{self.prefix}hub.alert-feedback"

    @property
    def patterns(self) -> str:
        return f"{self.prefix}hub.patterns"

    @property
    def responses(self) -> str:
        return f"{self.prefix}hub.responses"

    @property
    def audit(self) -> str:
        return f"{self.prefix}hub.audit"

    @property
    def partner_registry(self) -> str:
        """Partners added while the hub runs (``hub.partner_registry``), compacted."""
        return f"{self.prefix}hub.partners"

    @property
    def schemas(self) -> str:
        return f"{self.prefix}_schemas"
