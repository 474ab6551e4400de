"""The partners of a place: who may publish, read from the deployment's partners file.

Workers subscribe to exactly these partners' topics. (Faust 0.15's aiokafka driver does
not honour pattern subscriptions, and an explicit list is also the safer contract: a
topic nobody declared is never read.)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hub._configfile import load_config_file
from hub.errors import ConfigError
from hub.topics import PARTNER_ID_PATTERN

__all__ = ["Partner", "load_partners"]


class Partner(BaseModel):
    """One organisation that shares events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=PARTNER_ID_PATTERN.pattern)
    name: str = Field(min_length=1, max_length=120)
    sector: str = Field(pattern=r"^[a-z-]{2,32}$")


class _PartnersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partners: list[Partner] = Field(min_length=1)


def load_partners(path: Path) -> list[Partner]:
    """The partners in ``path``; ConfigError names the file, the key and the reason."""
    partners = load_config_file(path, _PartnersFile, "partners").partners
    ids = [partner.id for partner in partners]
    duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
    if duplicates:
        raise ConfigError(f"{path}: partners: duplicate id {duplicates[0]}")
    return partners
