"""Each Kafka client library's options from the settings: where the brokers are, how to
connect (``PLACEHUB_SECURITY_PROTOCOL``, SASL, TLS), and for producers ``acks=all`` and
idempotence.

Every Kafka client in the project is built from these (``tests/unit/test_kafka_clients.py``
scans the code for one that is not), so a deployment secures all of them with the same
``PLACEHUB_*`` variables, and no producer can lose an acknowledged record to a leader
change or write one twice when it retries.

The Faust app's credentials are made in ``hub.runtime.transport`` (``faust_credentials``,
from ``ssl_context`` and the SASL settings here), so that the connectors, which use this
module, do not import Faust.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.config import Settings
from hub.errors import ConfigError

__all__ = [
    "DURABLE_PRODUCER",
    "aiokafka_options",
    "aiokafka_producer_options",
    "confluent_options",
    "confluent_producer_options",
    "kafka_python_options",
    "kafka_python_producer_options",
    "ssl_context",
]

# A record is acknowledged once every in-sync replica has it, and a retry cannot write it
# twice. kafka-python's idempotence also needs retries > 0 and at most 5 requests in
# flight: its defaults, and it raises if a caller asks otherwise.
DURABLE_PRODUCER: Mapping[str, Any] = {"acks": "all", "enable_idempotence": True}


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """KafkaConsumer/KafkaAdminClient keyword arguments: the brokers and the security."""
    options: dict[str, Any] = {
        "bootstrap_servers": _servers(settings),
        "security_protocol": settings.security_protocol,
        **_sasl(settings),
    }
    if settings.uses_tls:
        ca, cert, key = _tls_files(settings)
        options.update(ssl_cafile=ca, ssl_certfile=cert, ssl_keyfile=key)
    return options


def kafka_python_producer_options(settings: Settings) -> dict[str, Any]:
    """KafkaProducer keyword arguments: ``kafka_python_options`` with ``DURABLE_PRODUCER``."""
    return {**kafka_python_options(settings), **DURABLE_PRODUCER}


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """AIOKafkaConsumer keyword arguments: the brokers and the security."""
    options: dict[str, Any] = {
        "bootstrap_servers": _servers(settings),
        "security_protocol": settings.security_protocol,
        **_sasl(settings),
    }
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    return options


def aiokafka_producer_options(settings: Settings) -> dict[str, Any]:
    """AIOKafkaProducer keyword arguments: ``aiokafka_options`` with ``DURABLE_PRODUCER``."""
    return {**aiokafka_options(settings), **DURABLE_PRODUCER}


def confluent_options(settings: Settings) -> dict[str, Any]:
    """A confluent-kafka (librdkafka) client's configuration: the brokers and the security
    (the benchmarks' baselines and the interoperability tests use it)."""
    options: dict[str, Any] = {
        "bootstrap.servers": ",".join(_servers(settings)),
        "security.protocol": settings.security_protocol,
    }
    sasl = _sasl(settings)
    if sasl:
        options.update(
            {
                "sasl.mechanism": sasl["sasl_mechanism"],
                "sasl.username": sasl["sasl_plain_username"],
                "sasl.password": sasl["sasl_plain_password"],
            }
        )
    if settings.uses_tls:
        files = zip(
            ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"),
            _tls_files(settings),
            strict=True,
        )
        options.update({name: path for name, path in files if path is not None})
    return options


def confluent_producer_options(settings: Settings) -> dict[str, Any]:
    """A confluent-kafka Producer's configuration: ``confluent_options``, acks=all and
    idempotent."""
    return {**confluent_options(settings), "acks": "all", "enable.idempotence": True}


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS client context that checks the broker's certificate and host name against
    ``ssl_cafile`` (the system's CAs when unset), with the client certificate if set."""
    ca, cert, key = _tls_files(settings)
    try:
        # What aiokafka's create_ssl_context does, from the standard library: this module
        # is part of the SDK, which installs no aiokafka.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # readable, but not a certificate or key (or not a pair)
        raise ConfigError(
            f"PLACEHUB_SSL_CAFILE/CERTFILE/KEYFILE: not usable for TLS ({exc.reason})"
        ) from None
    return context


def _servers(settings: Settings) -> list[str]:
    return [server.strip() for server in settings.bootstrap_servers.split(",")]


def _sasl(settings: Settings) -> dict[str, Any]:
    if not settings.uses_sasl:
        return {}
    return {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password_value(),
    }


def _tls_files(settings: Settings) -> tuple[str | None, str | None, str | None]:
    """The TLS files as paths the libraries take, each checked readable first: a library
    would say only that a file is missing, not which setting named it."""
    named = (
        ("SSL_CAFILE", settings.ssl_cafile),
        ("SSL_CERTFILE", settings.ssl_certfile),
        ("SSL_KEYFILE", settings.ssl_keyfile),
    )
    ca, cert, key = (_readable(name, path) for name, path in named)
    return ca, cert, key


def _readable(name: str, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with path.open("rb"):
            return str(path)
    except OSError as exc:
        raise ConfigError(f"PLACEHUB_{name}: cannot read the file ({exc.strerror})") from None
