"""The partners of a place: who may publish, read from the deployment's partners file.

Workers subscribe to exactly these partners' topics. (Faust 0.15's aiokafka driver does
not honour pattern subscriptions, and an explicit list is also the safer contract: a
topic nobody declared is never read.)

A partner may declare a ``webhook`` (``hub.webhooks``): the URL the hub POSTs its signed
alert notifications to, the name of the environment variable that holds the signing secret
(the secret itself never goes in this file, which is not a secret), and how to retry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.config_files import config_error, load_config_file
from hub.errors import ConfigError
from hub.topics import PARTNER_ID_PATTERN

__all__ = ["MIN_WEBHOOK_SECRET_BYTES", "Partner", "Webhook", "load_partners", "webhook_secrets"]

MIN_WEBHOOK_SECRET_BYTES = 32  # an HMAC key: 256 bits
_MAX_SECRETS = 2  # the current one and, during a rotation, the previous one


class Webhook(BaseModel):
    """Where and how the hub tells a partner of its alerts (``hub.webhooks``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2000)
    # PLACEHUB_WEBHOOK_SECRET_HOUSING: its _FILE variant (a path) is read first, then the
    # variable itself. One secret per line; two while a secret is being rotated.
    secret_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]{2,99}$")
    allow_http: bool = Field(
        default=False, description="Let a local or test receiver take plain http (never live)."
    )
    max_attempts: int = Field(default=6, ge=1, le=20)
    backoff_base_s: float = Field(default=1.0, gt=0, le=600)
    backoff_max_s: float = Field(default=300.0, gt=0, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _safe_url(self) -> Self:
        """https only (a notification names a person's id), unless http is allowed."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("url must be an absolute http(s) URL")
        if parts.scheme == "http" and not self.allow_http:
            raise ValueError("url must use https (allow_http: true for a local receiver only)")
        if parts.username or parts.password:
            raise ValueError("url must not carry credentials")
        return self


class Partner(BaseModel):
    """One organisation that shares events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=PARTNER_ID_PATTERN.pattern)
    name: str = Field(min_length=1, max_length=120)
    sector: str = Field(pattern=r"^[a-z-]{2,32}$")
    webhook: Webhook | None = None


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


def webhook_secrets(path: Path, partners: list[Partner]) -> dict[str, list[bytes]]:
    """Each webhook's signing secrets (current first), read from its ``secret_env``
    variable's ``_FILE`` or the variable. Read only where webhooks are sent (a worker), so
    other tools need no secrets; ConfigFileError at the partner's ``secret_env`` line when
    one is missing, unreadable, too short or more than two."""
    found = {}
    for n, partner in enumerate(partners):
        if partner.webhook is None:
            continue
        loc = ("partners", n, "webhook", "secret_env")
        name = partner.webhook.secret_env
        try:
            raw = _read_secret(name)
        except ConfigError as exc:
            raise config_error(path, loc, f"partners.{n}.webhook.secret_env: {exc}") from None
        secrets = [line.strip().encode() for line in raw.splitlines() if line.strip()]
        problem = None
        if not secrets:
            problem = f"{name} is empty"
        elif len(secrets) > _MAX_SECRETS:
            problem = f"{name} holds more than {_MAX_SECRETS} secrets"
        elif any(len(s) < MIN_WEBHOOK_SECRET_BYTES for s in secrets):
            problem = f"a secret in {name} is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes"
        if problem:
            raise config_error(path, loc, f"partners.{n}.webhook.secret_env: {problem}")
        found[partner.id] = secrets
    return found


def _read_secret(name: str) -> str:
    """The value of ``<name>_FILE``'s file, else of ``<name>``; ConfigError if neither."""
    file = os.environ.get(f"{name}_FILE")
    if file:
        try:
            return Path(file).read_text()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE cannot be read: {exc.strerror}") from None
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"neither {name}_FILE nor {name} is set")
    return value
