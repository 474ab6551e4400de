"""Who may do what on Kafka: the hub's ACL model as plain data, and applying it to a cluster.

Why: with ``allow.everyone.if.no.acl.found=false`` the broker refuses everything that no
ACL allows, so each SCRAM principal gets exactly the grants its role needs (issue 14):

- a **partner** (``partner-<id>``) writes its own ``partner.<id>.events`` and
  ``partner.<id>.links`` and the shared ``consent.records`` (who owns a consent id or a link
  is checked by the hub, keyed), and reads and writes its own ``partner.<id>.positions``
  (where its SQL-poll connectors keep their place). It reads nothing else: the SDK carries
  its writer schemas and their ids (``hub.schema_files``), and a worker registers the
  subjects partners write (``partner.<id>.events-value``, ``partner.<id>.links-value``,
  ``consent.records-value``) at start; it creates no topic and joins no group;
- a **connector** (``connector-<partner>-<name>``) runs for one partner with that
  partner's grants, so a stolen connector credential is no more than the partner's own;
- a **worker** (``worker-<name>``) reads and writes what the stages need: every partner
  topic (the gate and the links stage read them; HTTP ingest writes them), the ``hub.*``
  topics, ``consent.records``, ``_schemas``, its app's internal topics and changelogs
  (``<app_id>-`` prefix), and its consumer groups (``<app_id>`` and ``<app_id>-*``); it
  creates and configures those topics at start (``hub._admin.declare_topics``);
- the **admin** and the **broker** are ``super.users`` of the cluster and need no ACLs.

Every producer is idempotent, so partners, connectors and workers hold ``IdempotentWrite``
on the cluster (Kafka 3+ allows it with ``Write`` on a topic anyway; older brokers need it).

``grants_for`` turns a principal into ``Grant`` rows (plain data the unit tests and the
Strimzi ``KafkaUser`` resources mirror); ``apply`` makes a cluster's ACLs for a principal
equal those rows (adding what is missing, deleting what is stale); ``revoke`` removes them
and the principal's SCRAM credential; ``create_user`` sets the credential.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from hub.errors import BrokerError, ConfigError
from hub.topics import PARTNER_ID_PATTERN, Topics

__all__ = [
    "ADMIN",
    "BROKER",
    "NO_PREFIX",
    "SCRAM_ITERATIONS",
    "SCRAM_MECHANISM",
    "AclAdmin",
    "Grant",
    "Principal",
    "Role",
    "admin",
    "apply",
    "connector",
    "create_user",
    "grants_for",
    "new_password",
    "onboard",
    "partner",
    "revoke",
    "to_acls",
    "worker",
]

ADMIN = "admin"
BROKER = "broker"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192  # Kafka accepts 4096 to 16384 for SCRAM-SHA-512
NO_PREFIX = Topics()  # a deployment without a topic prefix
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

READ, WRITE, DESCRIBE = "READ", "WRITE", "DESCRIBE"
CREATE, DESCRIBE_CONFIGS, ALTER_CONFIGS = "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"
IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"
# What a worker does on the topics it owns: read, write, create and keep their retention.
_OWNS = (READ, WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS, ALTER_CONFIGS)


class Role(StrEnum):
    """What a principal is, which decides its grants."""

    PARTNER = "partner"
    CONNECTOR = "connector"
    WORKER = "worker"
    ADMIN = "admin"


@dataclass(frozen=True, order=True)
class Grant:
    """One allow rule: ``operation`` on a resource (``topic``, ``group`` or ``cluster``)
    named exactly (``literal``) or by a name prefix (``prefixed``)."""

    resource: str
    name: str
    pattern: str
    operation: str


@dataclass(frozen=True)
class Principal:
    """A SCRAM user and the role its grants come from; ``partner_id`` for partners and
    connectors, ``app_id`` for workers, ``topics`` for the deployment's topic prefix."""

    name: str
    role: Role
    partner_id: str | None = None
    app_id: str | None = None
    topics: Topics = NO_PREFIX

    @property
    def kafka_principal(self) -> str:
        """The name the broker's authorizer sees: ``User:<name>``."""
        return f"User:{self.name}"


def _checked_name(name: str, field: str) -> str:
    if not _NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{field}: must be 1-63 lower-case letters, digits or '-', starting with a "
            f"letter or digit"
        )
    return name


def _checked_partner(partner_id: str) -> str:
    if not PARTNER_ID_PATTERN.fullmatch(partner_id):
        raise ConfigError(
            "partner_id: must be 2-63 lower-case letters, digits or '-', starting with a "
            "letter or digit"
        )
    return partner_id


def partner(partner_id: str, topics: Topics = NO_PREFIX) -> Principal:
    """The principal a partner's SDK publishes as: ``partner-<id>``."""
    _checked_partner(partner_id)
    return Principal(f"partner-{partner_id}", Role.PARTNER, partner_id=partner_id, topics=topics)


def connector(partner_id: str, name: str, topics: Topics = NO_PREFIX) -> Principal:
    """The principal of one connector run for a partner: ``connector-<partner>-<name>``."""
    _checked_partner(partner_id)
    full = _checked_name(f"connector-{partner_id}-{_checked_name(name, 'connector name')}", "name")
    return Principal(full, Role.CONNECTOR, partner_id=partner_id, topics=topics)


def worker(name: str, app_id: str, topics: Topics = NO_PREFIX) -> Principal:
    """The principal of one hub worker of app ``app_id``: ``worker-<name>``."""
    full = _checked_name(f"worker-{_checked_name(name, 'worker name')}", "name")
    if not app_id:
        raise ConfigError("app_id: must not be empty (the worker's topics and group prefix)")
    return Principal(full, Role.WORKER, app_id=app_id, topics=topics)


def admin() -> Principal:
    """The admin principal (a super user: no ACLs)."""
    return Principal(ADMIN, Role.ADMIN)


def _topic(name: str, *operations: str, prefixed: bool = False) -> list[Grant]:
    pattern = "prefixed" if prefixed else "literal"
    return [Grant("topic", name, pattern, op) for op in operations]


def _writer(topics: Topics, partner_id: str) -> list[Grant]:
    """A partner's grants, which its connectors share."""
    return [
        *_topic(topics.partner(partner_id), WRITE, DESCRIBE),
        *_topic(topics.partner_links(partner_id), WRITE, DESCRIBE),
        *_topic(topics.consent, WRITE, DESCRIBE),
        *_topic(topics.partner_positions(partner_id), READ, WRITE, DESCRIBE),
        Grant("cluster", "kafka-cluster", "literal", IDEMPOTENT_WRITE),
    ]


def _worker(topics: Topics, app_id: str) -> list[Grant]:
    return [
        *_topic(f"{topics.prefix}partner.", *_OWNS, prefixed=True),
        *_topic(f"{topics.prefix}hub.", *_OWNS, prefixed=True),
        *_topic(topics.consent, *_OWNS),
        *_topic(topics.schemas, *_OWNS),
        *_topic(f"{app_id}-", *_OWNS, prefixed=True),
        Grant("group", app_id, "literal", READ),
        Grant("group", app_id, "literal", DESCRIBE),
        Grant("group", f"{app_id}-", "prefixed", READ),
        Grant("group", f"{app_id}-", "prefixed", DESCRIBE),
        Grant("cluster", "kafka-cluster", "literal", IDEMPOTENT_WRITE),
    ]


def grants_for(principal: Principal) -> list[Grant]:
    """Every allow rule ``principal`` holds, sorted; none for the admin (a super user)."""
    if principal.role in (Role.PARTNER, Role.CONNECTOR):
        assert principal.partner_id is not None
        grants = _writer(principal.topics, principal.partner_id)
    elif principal.role is Role.WORKER:
        assert principal.app_id is not None
        grants = _worker(principal.topics, principal.app_id)
    else:
        grants = []
    return sorted(set(grants))


# --------------------------------------------------------------------------- applying


class AclAdmin(Protocol):
    """The part of kafka-python's ``KafkaAdminClient`` this module uses."""

    def create_acls(self, acls: list[ACL]) -> dict[str, list[Any]]: ...

    def delete_acls(self, acl_filters: list[ACLFilter]) -> list[Any]: ...

    def describe_acls(self, acl_filter: ACLFilter) -> Any: ...

    def alter_user_scram_credentials(self, alterations: list[Any]) -> dict[str, str | None]: ...


_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.CLUSTER,
}
_PATTERNS = {"literal": ACLResourcePatternType.LITERAL, "prefixed": ACLResourcePatternType.PREFIXED}


def to_acls(principal: Principal) -> list[ACL]:
    """``principal``'s grants as kafka-python ``ACL`` objects (allow, from any host)."""
    return [
        ACL(
            principal=principal.kafka_principal,
            host="*",
            operation=ACLOperation[grant.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                _RESOURCES[grant.resource], grant.name, _PATTERNS[grant.pattern]
            ),
        )
        for grant in grants_for(principal)
    ]


def _held(client: AclAdmin, principal: Principal) -> list[ACL]:
    """The ACLs the cluster holds for ``principal`` now."""
    everything = ACLFilter(
        principal=principal.kafka_principal,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    try:
        found, _ = client.describe_acls(everything)  # raises rather than return an error
    except KafkaError as exc:
        raise BrokerError(f"describing ACLs failed ({type(exc).__name__})") from None
    return list(found)


def _delete(client: AclAdmin, acls: Sequence[ACL]) -> None:
    if not acls:
        return
    try:
        results = client.delete_acls(list(acls))
    except KafkaError as exc:
        raise BrokerError(f"deleting ACLs failed ({type(exc).__name__})") from None
    failed = [error.__name__ for _, _, error in results if getattr(error, "errno", 0)]
    if failed:
        raise BrokerError(f"deleting ACLs failed ({', '.join(sorted(set(failed)))})")


def apply(client: AclAdmin, principal: Principal) -> tuple[int, int]:
    """Make the cluster's ACLs for ``principal`` exactly its grants; (added, removed)."""
    wanted = to_acls(principal)
    held = _held(client, principal)
    missing = [acl for acl in wanted if acl not in held]
    stale = [acl for acl in held if acl not in wanted]
    if missing:
        try:
            result = client.create_acls(missing)
        except KafkaError as exc:
            raise BrokerError(f"creating ACLs failed ({type(exc).__name__})") from None
        if result["failed"]:
            names = sorted({type(error).__name__ for error in result["failed"]})
            raise BrokerError(f"creating ACLs failed ({', '.join(names)})")
    _delete(client, stale)
    return len(missing), len(stale)


def new_password() -> str:
    """A fresh SCRAM password: 48 hex digits (nothing a JAAS or --add-scram value escapes)."""
    return secrets.token_hex(24)


def _alter(client: AclAdmin, alterations: Iterable[Any], what: str) -> None:
    try:
        answer = client.alter_user_scram_credentials(list(alterations))
    except KafkaError as exc:
        raise BrokerError(f"{what} failed ({type(exc).__name__})") from None
    failed = sorted(user for user, message in answer.items() if message)
    if failed:
        raise BrokerError(f"{what} failed for user(s) {', '.join(failed)}")


def create_user(client: AclAdmin, principal: Principal, password: str) -> None:
    """Set (or rotate) ``principal``'s SCRAM-SHA-512 credential to ``password``."""
    upsert = UserScramCredentialUpsertion(
        principal.name, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
    )
    _alter(client, [upsert], "setting a SCRAM credential")


def onboard(client: AclAdmin, principal: Principal, password: str) -> tuple[int, int]:
    """Create ``principal``'s credential and apply its ACLs (what ``partners add`` calls)."""
    create_user(client, principal, password)
    return apply(client, principal)


def revoke(client: AclAdmin, principal: Principal) -> int:
    """Remove every ACL of ``principal`` and its SCRAM credential; the ACLs removed."""
    held = _held(client, principal)
    _delete(client, held)
    deletion = UserScramCredentialDeletion(principal.name, ScramMechanism.SCRAM_SHA_512)
    try:
        answer = client.alter_user_scram_credentials([deletion])
    except KafkaError as exc:
        raise BrokerError(f"deleting a SCRAM credential failed ({type(exc).__name__})") from None
    message = answer.get(principal.name)
    if message and "does not exist" not in message:  # revoking twice is not an error
        raise BrokerError(f"deleting the SCRAM credential of {principal.name} failed")
    return len(held)
