"""The secured local cluster: credentials, TLS files, listener settings and its refusals.

Why: ``placehub broker start --secure`` (or ``PLACEHUB_BROKER_SECURE=1``) runs the local
cluster the way a place must run Kafka (issue 14): nobody reaches it without a SCRAM
credential over TLS, and nobody does more than the ACLs of ``hub.kafka_acls`` allow.

Each node has two listeners:

- ``CLIENT`` (``SASL_SSL``, SCRAM-SHA-512) on the broker port: every client, and the
  brokers' own replication (as the ``broker`` user);
- ``CONTROLLER`` (``SSL`` with client certificates required) on the controller port: the
  KRaft quorum and the brokers' registrations. SCRAM cannot guard it (SCRAM credentials
  live in the metadata log the controllers serve), so only a node certificate from the
  local CA gets in, mapped to ``User:broker``; nobody else can talk to the controllers.

``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false`` refuses whatever no
ACL allows; ``admin`` and ``broker`` are the only super users. Their passwords are made
once into 0600 files under ``<broker_dir>/security`` and put into the metadata at format
time (``kafka-storage format --add-scram``), the only way to have SCRAM users before a
broker is up. ``admin.env`` there holds what an admin client needs (``PLACEHUB_*``).

Refusals are logged by the brokers to ``security.log`` in each node folder
(``deploy/local/log4j2.properties``): authorizer denials and failed authentications;
:func:`security_events` counts them for ``placehub broker status``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import kafka_clients
from hub.atomic_file import write_atomic
from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka_acls import ADMIN, BROKER, SCRAM_ITERATIONS, SCRAM_MECHANISM, new_password
from hub.local_ca import NODE_COMMON_NAME, ensure_ca, node_keystore

__all__ = [
    "AUTHORIZER",
    "CLIENT_LISTENER",
    "CONTROLLER_LISTENER",
    "SECURITY_LOG",
    "BrokerSecrets",
    "SecurityEvents",
    "SecurityFiles",
    "admin_env",
    "client_options",
    "ensure_secrets",
    "read_secrets",
    "secure_properties",
    "security_events",
    "storage_format_args",
    "store_password",
]

CLIENT_LISTENER = "CLIENT"
CONTROLLER_LISTENER = "CONTROLLER"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
SECURITY_LOG = "security.log"
_DENIED = " is Denied operation = "
# A wrong login or no TLS: "Failed authentication with <client> (...)"; TLS without a SASL
# login: the broker closes the connection on its first request ("... during SASL handshake").
_FAILED_AUTHENTICATION = ("Failed authentication with ", "during SASL handshake")


@dataclass(frozen=True)
class SecurityFiles:
    """Where the secured cluster's credentials and TLS files live (``<broker_dir>/security``)."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients trust (``PLACEHUB_SSL_CAFILE``)."""
        return self.dir / "ca.pem"

    @property
    def keystore_password(self) -> Path:
        """The password of the nodes' key stores."""
        return self.dir / "keystore.password"

    @property
    def admin_env(self) -> Path:
        """``PLACEHUB_*`` lines an admin client needs (no secret in it: a password file)."""
        return self.dir / "admin.env"

    def node_keystore(self, node_id: int) -> Path:
        """Node ``node_id``'s key, certificate and CA certificate (PKCS#12)."""
        return self.dir / f"node-{node_id}.p12"

    def password_file(self, user: str) -> Path:
        """The SCRAM password of ``user`` (``PLACEHUB_SASL_PASSWORD_FILE``)."""
        return self.dir / "users" / f"{user}.password"


@dataclass(frozen=True)
class BrokerSecrets:
    """What rendering and formatting a secured node need, read from its files."""

    files: SecurityFiles
    admin_password: str
    broker_password: str
    keystore_password: str


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def store_password(path: Path, password: str) -> Path:
    """Write ``password`` to ``path`` (made or replaced), readable by its owner only."""
    write_atomic(path, password + "\n", 0o600)
    return path


def _secret(path: Path) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read ({exc.strerror}); it is made by `placehub broker start --secure`"
        ) from None
    if not value:
        raise ConfigError(f"{path}: empty; delete it and the cluster's folder to start afresh")
    return value


def _ensure_secret(path: Path) -> None:
    if not path.exists():
        _write_secret(path, new_password())


def ensure_secrets(files: SecurityFiles, node_ids: Iterable[int]) -> BrokerSecrets:
    """Passwords, CA and node key stores under ``files.dir``, each made the first time only."""
    files.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(files.dir, 0o700)
    for path in (files.password_file(ADMIN), files.password_file(BROKER), files.keystore_password):
        _ensure_secret(path)
    secrets = read_secrets(files)
    ca = ensure_ca(files.dir)
    for node_id in node_ids:
        node_keystore(ca, node_id, files.node_keystore(node_id), secrets.keystore_password)
    return secrets


def read_secrets(files: SecurityFiles) -> BrokerSecrets:
    """The secured cluster's passwords, or a ConfigError naming the file that is missing."""
    return BrokerSecrets(
        files=files,
        admin_password=_secret(files.password_file(ADMIN)),
        broker_password=_secret(files.password_file(BROKER)),
        keystore_password=_secret(files.keystore_password),
    )


def secure_properties(
    secrets: BrokerSecrets, node_id: int, host: str, broker_port: int, controller_port: int
) -> dict[str, str]:
    """The server.properties lines that secure one node (they replace its plain listeners)."""
    files = secrets.files
    client, controller = CLIENT_LISTENER, CONTROLLER_LISTENER
    mechanism = SCRAM_MECHANISM.lower()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER}" password="{secrets.broker_password}";'
    )
    # The node certificates' CN maps to the brokers' super user; anything else keeps its DN.
    node_cn = NODE_COMMON_NAME.format(node_id="[0-9]+")
    return {
        "listeners": f"{client}://{host}:{broker_port},{controller}://{host}:{controller_port}",
        "advertised.listeners": f"{client}://{host}:{broker_port}",
        "listener.security.protocol.map": f"{client}:SASL_SSL,{controller}:SSL",
        "inter.broker.listener.name": client,
        "controller.listener.names": controller,
        # SCRAM on the client listener, for clients and for replication between brokers.
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.{client.lower()}.{mechanism}.sasl.jaas.config": jaas,
        # TLS on both listeners, from the local CA (hub.local_ca).
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(files.node_keystore(node_id)),
        "ssl.keystore.password": secrets.keystore_password,
        "ssl.key.password": secrets.keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "ssl.endpoint.identification.algorithm": "https",
        # The controllers take only node certificates: no anonymous admin reaches them.
        f"listener.name.{controller.lower()}.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": f"RULE:^CN={node_cn}$/{BROKER}/,DEFAULT",
        # Default deny: only ACLs (hub.kafka_acls) and the two super users let anything through.
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN};User:{BROKER}",
    }


def storage_format_args(secrets: BrokerSecrets) -> list[str]:
    """``kafka-storage format`` arguments that put the admin and broker users in the metadata."""
    args: list[str] = []
    for user, password in ((ADMIN, secrets.admin_password), (BROKER, secrets.broker_password)):
        scram = f"{SCRAM_MECHANISM}=[name={user},password={password},iterations={SCRAM_ITERATIONS}]"
        args += ["--add-scram", scram]
    return args


def client_options(secrets: BrokerSecrets, user: str = ADMIN) -> dict[str, Any]:
    """kafka-python keyword arguments, less the brokers, to connect to the secured cluster
    as ``user`` (its password file): ``hub.kafka_clients``'s, as any client's are."""
    as_user = Settings.model_construct(
        security_protocol="SASL_SSL",
        sasl_mechanism=SCRAM_MECHANISM,
        sasl_username=user,
        sasl_password_file=secrets.files.password_file(user),
        ssl_cafile=secrets.files.ca_cert,
    )
    options = kafka_clients.kafka_python_options(as_user)
    del options["bootstrap_servers"]
    return options


def admin_env(files: SecurityFiles, bootstrap_servers: str, replication_factor: int) -> str:
    """``KEY=value`` lines that make a placehub client the cluster's admin (no secret inline).

    With the cluster's replication factor: a topic made with fewer replicas than the
    brokers' ``min.insync.replicas`` takes no ``acks=all`` write."""
    lines = {
        "PLACEHUB_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PLACEHUB_REPLICATION_FACTOR": str(replication_factor),
        "PLACEHUB_SECURITY_PROTOCOL": "SASL_SSL",
        "PLACEHUB_SASL_MECHANISM": SCRAM_MECHANISM,
        "PLACEHUB_SASL_USERNAME": ADMIN,
        "PLACEHUB_SASL_PASSWORD_FILE": str(files.password_file(ADMIN)),
        "PLACEHUB_SSL_CAFILE": str(files.ca_cert),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


@dataclass(frozen=True)
class SecurityEvents:
    """Refusals the brokers logged: ACL denials and connections that failed to authenticate."""

    denied: int
    failed_authentications: int


def security_events(node_dirs: Iterable[Path]) -> SecurityEvents:
    """Count the refusals in each node's ``security.log`` (and its rolled-over files)."""
    denied = failed = 0
    for node_dir in node_dirs:
        for log in sorted(node_dir.glob(f"{SECURITY_LOG}*")):
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if _DENIED in line:
                    denied += 1
                elif any(marker in line for marker in _FAILED_AUTHENTICATION):
                    failed += 1
    return SecurityEvents(denied=denied, failed_authentications=failed)
