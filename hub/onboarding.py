"""``placehub partners add`` and ``remove``: a partner onboarded, or revoked, in one step.

``add`` checks the id, name and sector; creates the partner's topics (events, links, SQL
poll positions) and registers their subjects (its SDK registers nothing); on a secured
cluster makes its SCRAM principal and exactly its ACLs (``hub.kafka_acls``); makes an HTTP
ingest token, of which only the hash is kept; registers the partner on ``hub.partners``,
which running workers follow (``hub.partner_book``); waits until the workers answer for
it; and returns the hand-over for the partner's IT team. Secrets go to files readable by
their owner only, never to the screen or a log. Every step can be run again: an ``add``
that failed half-way is finished by running it again.

With ``--no-kafka-user`` the principal is left to whoever owns principals: on Strimzi the
User Operator, which expects to be alone in managing users (``python deploy/render.py
--kafka-user <id>`` prints the partner's ``KafkaUser``).

``remove`` revokes the principal and its ACLs and marks the registration removed, so the
workers refuse the ingest token. The partner's topics stay, and are still read: what it
sent before still reaches a fate. Delete them when their retention allows.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from hub import kafka_acls
from hub._admin import admin_client, ensure_partner_topics
from hub.broker_security import store_password
from hub.config import Settings
from hub.config_files import first_error
from hub.errors import ConfigError
from hub.partner_join import register_subjects
from hub.partner_registry import (
    Registration,
    ensure_registry,
    read_registrations,
    write_registration,
)
from hub.partners import Partner, load_partners
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from hub.users import Role, User, UserDirectory, hash_token

__all__ = ["Handover", "Revocation", "add_partner", "list_registrations", "remove_partner"]

_POLL_S = 1.0
_PROGRESS_EVERY_S = 10.0


@dataclass(frozen=True)
class Handover:
    """What a new partner's IT team needs (``describe``), and whether workers joined it."""

    partner: Partner
    settings: Settings
    kafka_user: str | None
    password_file: Path | None
    token_file: Path
    workers_joined: bool

    def describe(self) -> str:
        """The hand-over as text: where, who, which topics, and an SDK snippet."""
        s, p, topics = self.settings, self.partner, Topics(self.settings.topic_prefix)
        base = s.canonical_url
        lines = [
            f"partner {p.id} ({p.name}, {p.sector}) is registered",
            "workers: " + ("answering for it" if self.workers_joined else _NOT_JOINED),
            "",
            "Hand these to its IT team over a secure channel:",
            f"  bootstrap servers  {s.bootstrap_servers}",
            f"  security           {s.security_protocol}",
        ]
        if self.kafka_user:
            lines += [
                f"  kafka user         {self.kafka_user} (SCRAM-SHA-512)",
                f"  its password       in {self.password_file} (mode 0600)",
            ]
            if s.ssl_cafile:
                lines.append(f"  cluster CA         {s.ssl_cafile}")
        elif s.uses_sasl:
            name = kafka_acls.partner(p.id, topics).name
            lines.append(f"  kafka user         {name}: made by its owner (--no-kafka-user)")
        else:
            lines.append(f"  kafka user         none: {_UNSECURED}")
        lines += [
            f"  events topic       {topics.partner(p.id)}",
            f"  links topic        {topics.partner_links(p.id)}",
            f"  HTTP ingest        POST {base}/v1/events",
            f"  its status         GET {base}/v1/partners/{p.id}/status",
            f"  ingest token       in {self.token_file} (mode 0600; the hub keeps its hash)",
            f"  catalogue          {base}/catalogue",
            "  place key          from the hub's operator, by hand (never in these files)",
            "",
            "Its SDK (pip install placehub_connectors-*.whl; `make sdk` builds it):",
            *(f"  {line}" for line in self._sdk_snippet()),
        ]
        return "\n".join(lines)

    def _sdk_snippet(self) -> list[str]:
        s = self.settings
        env = [f"export PLACEHUB_BOOTSTRAP_SERVERS={s.bootstrap_servers}"]
        if self.kafka_user:
            env += [
                f"export PLACEHUB_SECURITY_PROTOCOL={s.security_protocol}",
                f"export PLACEHUB_SASL_USERNAME={self.kafka_user}",
                f"export PLACEHUB_SASL_PASSWORD_FILE={self.password_file}",
            ]
            if s.ssl_cafile:
                env.append(f"export PLACEHUB_SSL_CAFILE={s.ssl_cafile}")
        return [
            *env,
            "export PLACEHUB_PLACE_KEY_FILE=/path/to/place.key",
            f'python -c \'from connectors import Publisher; Publisher("{self.partner.id}", '
            '"my-system")\'  # README, "Publishing from a partner system"',
        ]


_NOT_JOINED = "none answered for it yet (they join it when they run; check its status)"
_UNSECURED = (
    "this cluster has no Kafka credentials, so anyone who reaches it may publish "
    "(placehub broker start --secure; docs/operations.md)"
)


_MAX_ID = 59  # a user id is at most 64 characters, and the ingest user's adds "-feed"


def _partner(partner_id: str, name: str, sector: str) -> Partner:
    try:
        partner = Partner(id=partner_id, name=name, sector=sector)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None
    if len(partner.id) > _MAX_ID:
        raise ConfigError(f"id: at most {_MAX_ID} characters for a partner added here")
    return partner


def _ingest_user_id(partner_id: str) -> str:
    return f"{partner_id}-feed"  # as the partners file's ingest users are named


def add_partner(
    settings: Settings,
    partner_id: str,
    *,
    name: str,
    sector: str,
    secrets_dir: Path | None = None,
    wait_s: float = 60.0,
    kafka_user: bool = True,
    progress: Callable[[str], None] = print,
) -> Handover:
    """Onboard one partner (module docstring); ConfigError before anything is made if the
    id, name or sector breaks its rule or the partner exists already."""
    partner = _partner(partner_id, name, sector)
    user_id = _ingest_user_id(partner.id)
    _check_new(settings, partner, user_id)
    folder = secrets_dir or settings.state_dir / "partners" / partner.id
    topics = Topics(settings.topic_prefix)
    progress(f"creating the topics of {partner.id}")
    ensure_partner_topics(settings, partner.id)
    registry = SchemaRegistry(settings)
    try:
        register_subjects(Serde(registry), topics, partner.id)
    finally:
        registry.close()
    username, password_file = None, None
    if settings.uses_sasl and kafka_user:
        principal = kafka_acls.partner(partner.id, topics)
        progress(f"making the Kafka principal {principal.name} and its ACLs")
        password = kafka_acls.new_password()
        with admin_client(settings) as admin:
            kafka_acls.onboard(admin, principal, password)
        username = principal.name
        password_file = store_password(folder / "kafka.password", password)
    token = secrets.token_urlsafe(32)
    token_file = store_password(folder / "ingest.token", token)
    user = User(id=user_id, role=Role.PARTNER, partner=partner.id, token_sha256=hash_token(token))
    write_registration(settings, Registration(partner=partner, ingest_user=user))
    joined = _wait_for_workers(settings, partner.id, token, wait_s, progress)
    return Handover(partner, settings, username, password_file, token_file, joined)


def _check_new(settings: Settings, partner: Partner, user_id: str) -> None:
    if any(p.id == partner.id for p in load_partners(settings.partners_file)):
        raise ConfigError(f"id: {partner.id} is in the partners file already")
    if UserDirectory.load(settings.users_file).by_id(user_id) is not None:
        raise ConfigError(f"id: the users file has a user {user_id} already")
    found = _registrations(settings).get(partner.id)
    if found is not None and not found.removed:
        raise ConfigError(f"id: {partner.id} is registered already (partners remove first)")


def _wait_for_workers(
    settings: Settings, partner_id: str, token: str, wait_s: float, progress: Callable[[str], None]
) -> bool:
    """Whether the workers answer for the partner (its status, with its own token, needs
    every worker's share) within ``wait_s``; progress every few seconds."""
    url = f"{settings.canonical_url}/v1/partners/{partner_id}/status"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.monotonic()
    said = start
    progress(f"waiting up to {wait_s:.0f} s for the workers at {settings.canonical_url}")
    while time.monotonic() - start < wait_s:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            pass  # not joined yet (401, 404, 503) or no worker answering yet
        if time.monotonic() - said >= _PROGRESS_EVERY_S:
            said = time.monotonic()
            progress(f"  still waiting ({said - start:.0f} s)")
        time.sleep(_POLL_S)
    return False


@dataclass(frozen=True)
class Revocation:
    """What ``remove_partner`` revoked."""

    partner_id: str
    kafka_user: str | None
    acls_removed: int

    def describe(self) -> str:
        kafka = (
            f"Kafka principal {self.kafka_user} and its {self.acls_removed} ACLs revoked"
            if self.kafka_user
            else "no Kafka principal revoked (not secured, or --no-kafka-user)"
        )
        return "\n".join(
            [
                f"partner {self.partner_id} removed",
                f"  {kafka}",
                "  its ingest token is refused by each worker once it reads the removal",
                "  its topics stay and are still read; delete them when their retention allows",
            ]
        )


def remove_partner(settings: Settings, partner_id: str, *, kafka_user: bool = True) -> Revocation:
    """Revoke a partner added with ``add_partner`` (module docstring); ConfigError if it
    was not, or is in the partners file (removed there, by a redeploy)."""
    if any(p.id == partner_id for p in load_partners(settings.partners_file)):
        raise ConfigError(f"id: {partner_id} is in the partners file: remove it there")
    found = _registrations(settings).get(partner_id)
    if found is None:
        raise ConfigError(f"id: {partner_id} was never added with partners add")
    username, removed = None, 0
    if settings.uses_sasl and kafka_user:
        principal = kafka_acls.partner(partner_id, Topics(settings.topic_prefix))
        with admin_client(settings) as admin:
            removed = kafka_acls.revoke(admin, principal)
        username = principal.name
    write_registration(settings, found.model_copy(update={"removed": True}))
    return Revocation(partner_id, username, removed)


def list_registrations(settings: Settings) -> list[Registration]:
    """Every partner added with ``add_partner``, removed ones included, by id."""
    return sorted(_registrations(settings).values(), key=lambda r: r.partner.id)


def _registrations(settings: Settings) -> dict[str, Registration]:
    """The registry as it stands (its topic made first on a place that has none yet)."""
    ensure_registry(settings)
    return read_registrations(settings)
