"""Data-sharing agreements: the lawful basis for sharing without individual consent.

Each agreement is a YAML file in the deployment's agreements folder: which partners share
which event types, for which purposes, which roles may see the shared events (and which of
their fields), and how long they are kept. They are validated at load, and a bad file is
rejected naming file, key and reason.

The partners that signed an agreement (``partners``) are both who may share under it and
who may read what is shared under it: a reader holds an agreement's purposes only through
their organisation's signature (``hub.access`` applies that to each person-view entry).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hub.config_files import load_config_file
from hub.errors import ConfigError
from hub.models import PartnerEvent
from hub.topics import PARTNER_ID_PATTERN
from hub.users import Role

__all__ = ["ENTRY_FIELDS", "Agreement", "AgreementBook", "EntryField", "load_agreements"]

# The fields of a person-view entry a role can be granted (tokens, sources and the partner's
# own source_ref are never granted: they are not for other organisations).
EntryField = Literal["event_type", "partner_id", "occurred_at", "purpose", "area_code", "age_band"]
ENTRY_FIELDS: frozenset[str] = frozenset(get_args(EntryField))


class Agreement(BaseModel):
    """One signed data-sharing agreement (e.g. public task for early help)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    partners: list[str] = Field(min_length=1)
    event_types: list[str] = Field(min_length=1, description="patterns, e.g. 'police.*'")
    purposes: list[str] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1, description="roles that may see the events")
    fields: dict[Role, list[EntryField]] | None = Field(
        default=None,
        description="per role in roles, the entry fields it sees; all of them when absent",
    )
    retention_days: int = Field(ge=1, le=3650)
    valid_from: date
    valid_to: date | None = None

    @field_validator("fields")
    @classmethod
    def _fields_are_for_listed_roles(
        cls, fields: dict[Role, list[EntryField]] | None, info: ValidationInfo
    ) -> dict[Role, list[EntryField]] | None:
        roles = info.data.get("roles") or []
        for role in fields or {}:
            if role not in roles:
                raise ValueError(f"role {role.value} is given fields but is not in roles")
        return fields

    @model_validator(mode="after")
    def _partner_ids_are_valid(self) -> Agreement:
        for partner in self.partners:
            if not PARTNER_ID_PATTERN.match(partner):
                raise ValueError(f"partner id {partner!r} is not a valid partner id")
        return self

    def in_force(self, day: date) -> bool:
        """Whether ``day`` falls within the agreement's validity."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def problem_with(self, event: PartnerEvent, at: datetime) -> str | None:
        """None when this agreement covers ``event`` at ``at``; else why not."""
        problem = self.signed_for(event.partner_id, event.basis.purpose, at)
        if problem is None and not any(
            fnmatchcase(event.event_type, pattern) for pattern in self.event_types
        ):
            return f"agreement {self.id} does not cover event type {event.event_type}"
        return problem

    def signed_for(self, partner_id: str, purpose: str, at: datetime) -> str | None:
        """None when ``partner_id`` signed this agreement, in force at ``at``, for
        ``purpose`` (what an identity link under it needs); else why not."""
        day = at.date()
        if not self.in_force(day):
            return f"agreement {self.id} is not in force on {day.isoformat()}"
        if partner_id not in self.partners:
            return f"agreement {self.id} does not include partner {partner_id}"
        if purpose not in self.purposes:
            return f"agreement {self.id} does not cover purpose {purpose}"
        return None

    def fields_for(self, role: Role) -> frozenset[str]:
        """The entry fields ``role`` is granted (none for a role the agreement omits)."""
        if role not in self.roles:
            return frozenset()
        if self.fields is None:
            return ENTRY_FIELDS
        return frozenset(self.fields.get(role, ()))

    def grants(self, partner: str, role: Role, purpose: str, day: date) -> frozenset[str]:
        """The fields of an entry shared for ``purpose`` under this agreement that a
        ``role`` of ``partner`` may see on ``day``: none unless ``partner`` signed it, it
        covers ``purpose`` and it is in force (sharing ends with the agreement)."""
        if partner not in self.partners or purpose not in self.purposes:
            return frozenset()
        if not self.in_force(day):
            return frozenset()
        return self.fields_for(role)


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


def load_agreements(directory: Path) -> AgreementBook:
    """Every ``*.yaml`` agreement in ``directory`` (none if it does not exist)."""
    agreements: list[Agreement] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        agreement = load_config_file(path, Agreement, "agreement")
        if agreement.id in {a.id for a in agreements}:
            raise ConfigError(f"{path}: id: agreement {agreement.id} is defined twice")
        agreements.append(agreement)
    return AgreementBook(agreements)
