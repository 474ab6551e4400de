"""Who may call the API: bearer tokens mapped to a user, a role and (for partners) a partner.

Only SHA-256 hashes of tokens are kept in the users file, so the file is not a secret.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hub._configfile import load_config_file

__all__ = ["Role", "User", "UserDirectory", "hash_token"]


class Role(StrEnum):
    PARTNER = "partner"
    PRACTITIONER = "practitioner"
    STEWARD = "steward"
    ADMIN = "admin"


class User(BaseModel):
    """One API caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    role: Role
    partner: str | None = None
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False)


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User]


def hash_token(token: str) -> str:
    """The hex SHA-256 of a bearer token, as stored in the users file."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserDirectory:
    """Looks callers up by bearer token."""

    def __init__(self, users: list[User]) -> None:
        self._by_hash = {user.token_sha256: user for user in users}

    @classmethod
    def load(cls, path: Path) -> UserDirectory:
        """Read and validate a users YAML file; ConfigError names the file, key and reason."""
        return cls(load_config_file(path, _UsersFile, "users").users)

    def authenticate(self, authorization: str | None) -> User | None:
        """The user a ``Bearer`` header belongs to, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._by_hash.get(hash_token(authorization.removeprefix("Bearer ").strip()))
