"""Who may call the API: bearer tokens mapped to a user, a role and (for partners) a partner.

Only SHA-256 hashes of tokens are kept in the users file, so the file is not a secret.
A token is presented as ``Authorization: Bearer <token>`` or, for Confluent-compatible
registry clients (``basic.auth.user.info``), as HTTP Basic with the user id as the user
name and the token as the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Collection
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.config_files import load_config_file
from hub.errors import ConfigError

__all__ = ["Role", "User", "UserDirectory", "hash_token"]


class Role(StrEnum):
    PARTNER = "partner"
    PRACTITIONER = "practitioner"
    STEWARD = "steward"
    ADMIN = "admin"
    # Answers subject access requests for one partner: reads who accessed a person
    # (hub.access_history), never the person's data.
    PRIVACY_OFFICER = "privacy-officer"


# Roles that act for one partner organisation, so must say which.
_OF_A_PARTNER = (Role.PARTNER, Role.PRACTITIONER, Role.PRIVACY_OFFICER)


class User(BaseModel):
    """One API caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    role: Role
    partner: str | None = None
    # A team within the partner (e.g. its financial inclusion team): an alert rule may
    # tell one team rather than the whole organisation.
    team: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False)

    @model_validator(mode="after")
    def _names_its_partner(self) -> Self:
        """A user acting for a partner without naming it would be scoped to no one (or all)."""
        if self.role in _OF_A_PARTNER and not self.partner:
            raise ValueError(f"a user of role {self.role.value} must name its partner")
        if self.team is not None and not self.partner:
            raise ValueError("a team belongs to a partner: name the partner too")
        return self


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        """Two users with one token would make the token's user ambiguous."""
        ids, hashes = set(), set()
        for user in self.users:
            if user.id in ids:
                raise ValueError(f"duplicate user id {user.id}")
            if user.token_sha256 in hashes:
                raise ValueError(f"user {user.id} has the same token as another user")
            ids.add(user.id)
            hashes.add(user.token_sha256)
        return self


def hash_token(token: str) -> str:
    """The hex SHA-256 of a bearer token, as stored in the users file."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserDirectory:
    """Looks callers up by bearer token (or Basic credentials), and users by id."""

    def __init__(self, users: list[User]) -> None:
        self._by_hash = {user.token_sha256: user for user in users}
        self._by_id = {user.id: user for user in users}

    @classmethod
    def load(cls, path: Path, partners: Collection[str] | None = None) -> UserDirectory:
        """Read and validate a users YAML file; ConfigError names the file, key and reason.
        With ``partners`` (the place's partner ids), a user acting for any other partner is
        refused: it would read books and people of an organisation the hub does not know."""
        users = load_config_file(path, _UsersFile, "users").users
        for n, user in enumerate(users):
            if partners is not None and user.partner is not None and user.partner not in partners:
                raise ConfigError(f"{path}: users.{n}.partner: not a partner of the partners file")
        return cls(users)

    def add(self, user: User) -> bool:
        """Add ``user`` (a partner's ingest user registered while the hub runs), replacing
        one of the same id; False, and nothing changed, if another user has its token."""
        holder = self._by_hash.get(user.token_sha256)
        if holder is not None and holder.id != user.id:
            return False
        self.remove(user.id)
        self._by_hash[user.token_sha256] = user
        self._by_id[user.id] = user
        return True

    def remove(self, user_id: str) -> None:
        """Forget ``user_id``: its token is refused from now on."""
        user = self._by_id.pop(user_id, None)
        if user is not None:
            self._by_hash.pop(user.token_sha256, None)

    def by_id(self, user_id: str) -> User | None:
        """The user with this id (how a worker-signed request names who it acts for)."""
        return self._by_id.get(user_id)

    def authenticate(self, authorization: str | None) -> User | None:
        """The user a ``Bearer`` (or ``Basic`` user-id:token) header belongs to, or None."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme == "Bearer":
            return self._by_hash.get(hash_token(credentials.strip()))
        if scheme.lower() == "basic":
            return self._basic(credentials.strip())
        return None

    def _basic(self, credentials: str) -> User | None:
        """HTTP Basic: the password is the token and the user name must be its user's id."""
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, colon, token = decoded.partition(":")
        user = self._by_hash.get(hash_token(token)) if colon else None
        if user is None or not hmac.compare_digest(user.id.encode(), name.encode()):
            return None
        return user
