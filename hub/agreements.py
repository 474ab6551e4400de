"""Data-sharing agreements: the lawful basis for sharing without individual consent.

Each agreement is a YAML file in the deployment's agreements folder: which partners share
which event types, for which purposes, which roles may see the shared events, and how long
they are kept. They are validated at load, and a bad file is rejected naming file, key
and reason.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub._configfile import load_config_file
from hub.errors import ConfigError
from hub.models import PartnerEvent
from hub.topics import PARTNER_ID_PATTERN
from hub.users import Role

__all__ = ["Agreement", "AgreementBook", "load_agreements"]


class Agreement(BaseModel):
    """One signed data-sharing agreement (e.g. public task for early help)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    partners: list[str] = Field(min_length=1)
    event_types: list[str] = Field(min_length=1, description="patterns, e.g. 'police.*'")
    purposes: list[str] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1, description="roles that may see the events")
    retention_days: int = Field(ge=1, le=3650)
    valid_from: date
    valid_to: date | None = None

    @model_validator(mode="after")
    def _partner_ids_are_valid(self) -> Agreement:
        for partner in self.partners:
            if not PARTNER_ID_PATTERN.match(partner):
                raise ValueError(f"partner id {partner!r} is not a valid partner id")
        return self

    def problem_with(self, event: PartnerEvent, at: datetime) -> str | None:
        """None when this agreement covers ``event`` at ``at``; else why not."""
        day = at.date()
        if day < self.valid_from or (self.valid_to is not None and day > self.valid_to):
            return f"agreement {self.id} is not in force on {day.isoformat()}"
        if event.partner_id not in self.partners:
            return f"agreement {self.id} does not include partner {event.partner_id}"
        if not any(fnmatchcase(event.event_type, pattern) for pattern in self.event_types):
            return f"agreement {self.id} does not cover event type {event.event_type}"
        if event.basis.purpose not in self.purposes:
            return f"agreement {self.id} does not cover purpose {event.basis.purpose}"
        return None


class AgreementBook:
    """The agreements in force for a deployment, by id."""

    def __init__(self, agreements: list[Agreement]) -> None:
        self.by_id = {agreement.id: agreement for agreement in agreements}

    def get(self, agreement_id: str) -> Agreement | None:
        return self.by_id.get(agreement_id)

    def retention(self, basis: str, consent_retention: timedelta) -> timedelta:
        """How long entries shared under ``basis`` ('consent:…'/'agreement:…') are kept."""
        kind, _, basis_id = basis.partition(":")
        agreement = self.by_id.get(basis_id) if kind == "agreement" else None
        return timedelta(days=agreement.retention_days) if agreement else consent_retention

    def visible_to(self, basis: str, role: Role) -> bool:
        """Whether ``role`` may see entries shared under ``basis``."""
        kind, _, basis_id = basis.partition(":")
        if kind != "agreement":
            return role in (Role.PRACTITIONER, Role.ADMIN)
        agreement = self.by_id.get(basis_id)
        return agreement is not None and role in agreement.roles


def load_agreements(directory: Path) -> AgreementBook:
    """Every ``*.yaml`` agreement in ``directory`` (none if it does not exist)."""
    agreements: list[Agreement] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        agreement = load_config_file(path, Agreement, "agreement")
        if agreement.id in {a.id for a in agreements}:
            raise ConfigError(f"{path}: id: agreement {agreement.id} is defined twice")
        agreements.append(agreement)
    return AgreementBook(agreements)
