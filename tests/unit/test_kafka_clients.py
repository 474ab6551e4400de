"""Kafka security settings (``hub.config``) and each client library's options from them
(``hub.kafka_clients``, the Faust app's in ``hub.runtime.transport``). No broker."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from hub.app import Hub
from hub.config import Settings, load_settings
from hub.errors import ConfigError
from hub.kafka_clients import (
    aiokafka_options,
    aiokafka_producer_options,
    confluent_options,
    confluent_producer_options,
    kafka_python_options,
    kafka_python_producer_options,
)
from hub.runtime.transport import faust_credentials

# A self-signed CA certificate made for these tests (valid to 2126; its key was thrown away).
TEST_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIULNbZ18pSYtHWLb8C6RwgTdPXzmUwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVcGxhY2VodWIgdW5pdC10ZXN0IENBMCAXDTI2MTIwMTA5MDc0
NloYDzIxMjYxMTA3MDkwNzQ2WjAgMR4wHAYDVQQDDBVwbGFjZWh1YiB1bml0LXRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARYUx2Y7S7UdRBmr+7gSAPo
26XcKbRmG5kRpPEXLvuNGjj1YoK+XvP7s+8kQ8MkiD/x8v+kcU9/2tGyGgFcv11T
o1MwUTAdBgNVHQ4EFgQUqQK2tExq6atR/4tfEmjD6MbrCdYwHwYDVR0jBBgwFoAU
qQK2tExq6atR/4tfEmjD6MbrCdYwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiAr0qXrorKbaUJF4QI0gGTgTkyc3Z0Bq7Toz9vzQOR1OgIhAKIfqT6M
GrkVEbxmKUyW1IWAe8MCyL4ByPY0fDckXlw/
-----END CERTIFICATE-----
"""
TEST_CA_SUBJECT = ((("commonName", "placehub unit-test CA"),),)
PASSWORD = "not-a-real-password-1234"
SERVERS = "127.0.0.1:1,127.0.0.1:2"


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(TEST_CA_PEM)
    return path


def _settings(**values: Any) -> Settings:
    return Settings(bootstrap_servers=SERVERS, **values)


def _sasl(protocol: str, **values: Any) -> Settings:
    return _settings(
        security_protocol=protocol, sasl_username="partner-x", sasl_password=PASSWORD, **values
    )


# --------------------------------------------------------------------------- settings


REFUSED = [
    ({"security_protocol": "SASL_SSL"}, "PLACEHUB_SASL_USERNAME: required when"),
    (
        {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "x"},
        "PLACEHUB_SASL_PASSWORD_FILE or PLACEHUB_SASL_PASSWORD: required when",
    ),
    (
        {"sasl_username": "x", "sasl_password": PASSWORD},
        "PLACEHUB_SASL_USERNAME/PASSWORD: set, but PLACEHUB_SECURITY_PROTOCOL is PLAINTEXT",
    ),
    (
        {"security_protocol": "SASL_PLAINTEXT", "ssl_cafile": "ca.pem", "sasl_username": "x"}
        | {"sasl_password": PASSWORD},
        "PLACEHUB_SSL_*: set, but PLACEHUB_SECURITY_PROTOCOL is SASL_PLAINTEXT",
    ),
    ({"security_protocol": "SSL", "ssl_keyfile": "k.pem"}, "PLACEHUB_SSL_KEYFILE: needs"),
]


@pytest.mark.parametrize(("values", "rule"), REFUSED, ids=[r for _, r in REFUSED])
def test_incomplete_or_unused_security_settings_are_refused_at_load(
    values: dict[str, Any], rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(**values)
    assert rule in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_load_settings_names_the_settings_and_the_rule_not_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLACEHUB_SASL_USERNAME", "x")
    monkeypatch.setenv("PLACEHUB_SASL_PASSWORD", PASSWORD)
    load_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            load_settings()
    finally:
        load_settings.cache_clear()
    assert str(caught.value) == (
        "invalid settings: PLACEHUB_SASL_USERNAME/PASSWORD: set, but "
        "PLACEHUB_SECURITY_PROTOCOL is PLAINTEXT, which uses no SASL"
    )


def test_unknown_protocols_and_mechanisms_are_refused() -> None:
    with pytest.raises(ValidationError, match="security_protocol"):
        _settings(security_protocol="TLS")
    with pytest.raises(ValidationError, match="sasl_mechanism"):
        _sasl("SASL_SSL", sasl_mechanism="GSSAPI")


def test_the_password_file_is_preferred_and_read_when_a_client_is_made(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("from-the-file\n")
    settings = _sasl("SASL_PLAINTEXT", sasl_password_file=path)
    assert kafka_python_options(settings)["sasl_plain_password"] == "from-the-file"
    path.write_text("rotated\n")
    assert kafka_python_options(settings)["sasl_plain_password"] == "rotated"


def test_an_unreadable_or_empty_password_file_names_the_setting(tmp_path: Path) -> None:
    missing = _sasl("SASL_PLAINTEXT", sasl_password_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"^PLACEHUB_SASL_PASSWORD_FILE: cannot read"):
        kafka_python_options(missing)
    (tmp_path / "empty").write_text("\n")
    empty = _sasl("SASL_PLAINTEXT", sasl_password_file=tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"^PLACEHUB_SASL_PASSWORD: empty$"):
        aiokafka_options(empty)


def test_a_missing_or_unusable_tls_file_names_the_setting(tmp_path: Path) -> None:
    missing = _settings(security_protocol="SSL", ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(ConfigError) as caught:
        kafka_python_options(missing)
    assert str(caught.value) == (
        "PLACEHUB_SSL_CAFILE: cannot read the file (No such file or directory)"
    )
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"^PLACEHUB_SSL_CAFILE/CERTFILE/KEYFILE: not usable"):
        aiokafka_options(missing)


# --------------------------------------------------------------------------- kafka-python


def test_kafka_python_plaintext() -> None:
    assert kafka_python_options(_settings()) == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "PLAINTEXT",
    }


def test_kafka_python_ssl_with_the_ca_and_a_client_certificate(ca_file: Path) -> None:
    settings = _settings(
        security_protocol="SSL", ssl_cafile=ca_file, ssl_certfile=ca_file, ssl_keyfile=ca_file
    )
    assert kafka_python_options(settings) == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "SSL",
        "ssl_cafile": str(ca_file),
        "ssl_certfile": str(ca_file),
        "ssl_keyfile": str(ca_file),
    }


def test_kafka_python_ssl_without_a_ca_file_uses_the_system_cas() -> None:
    options = kafka_python_options(_settings(security_protocol="SSL"))
    assert options["ssl_cafile"] is None  # kafka-python then loads the default certificates


def test_kafka_python_sasl_plaintext() -> None:
    assert kafka_python_options(_sasl("SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256")) == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "partner-x",
        "sasl_plain_password": PASSWORD,
    }


def test_kafka_python_sasl_ssl_defaults_to_scram_sha_512(ca_file: Path) -> None:
    assert kafka_python_options(_sasl("SASL_SSL", ssl_cafile=ca_file)) == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "partner-x",
        "sasl_plain_password": PASSWORD,
        "ssl_cafile": str(ca_file),
        "ssl_certfile": None,
        "ssl_keyfile": None,
    }


def test_kafka_python_producers_are_acks_all_and_idempotent(ca_file: Path) -> None:
    settings = _sasl("SASL_SSL", ssl_cafile=ca_file)
    assert kafka_python_producer_options(settings) == {
        **kafka_python_options(settings),
        "acks": "all",
        "enable_idempotence": True,
    }


# --------------------------------------------------------------------------- aiokafka


def test_aiokafka_plaintext_has_no_tls_context() -> None:
    assert aiokafka_options(_settings()) == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "PLAINTEXT",
    }


def test_aiokafka_sasl_ssl_checks_the_broker_against_the_ca(ca_file: Path) -> None:
    options = aiokafka_options(_sasl("SASL_SSL", ssl_cafile=ca_file))
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["127.0.0.1:1", "127.0.0.1:2"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "partner-x",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert [ca["subject"] for ca in context.get_ca_certs()] == [TEST_CA_SUBJECT]


def test_aiokafka_producers_are_acks_all_and_idempotent() -> None:
    settings = _sasl("SASL_PLAINTEXT")
    assert aiokafka_producer_options(settings) == {
        **aiokafka_options(settings),
        "acks": "all",
        "enable_idempotence": True,
    }


# --------------------------------------------------------------------------- confluent-kafka


def test_confluent_sasl_ssl(ca_file: Path) -> None:
    assert confluent_producer_options(_sasl("SASL_SSL", ssl_cafile=ca_file)) == {
        "bootstrap.servers": SERVERS,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "partner-x",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca_file),
        "acks": "all",
        "enable.idempotence": True,
    }
    assert confluent_options(_settings()) == {
        "bootstrap.servers": SERVERS,
        "security.protocol": "PLAINTEXT",
    }


# --------------------------------------------------------------------------- Faust


def test_faust_plaintext_has_no_credentials() -> None:
    assert faust_credentials(_settings()) is None


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_passes_sasl_whole_to_aiokafka(protocol: str, ca_file: Path) -> None:
    """What Faust's driver hands every consumer and producer it makes, from the
    credentials: the same as ``aiokafka_options`` (SCRAM-SHA-512 not dropped)."""
    tls = {"ssl_cafile": ca_file} if protocol == "SASL_SSL" else {}
    settings = _sasl(protocol, **tls)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    expected = aiokafka_options(settings)
    del expected["bootstrap_servers"]
    assert {**auth, "ssl_context": None} == {**expected, "ssl_context": None}
    assert (auth["ssl_context"] is None) == (protocol == "SASL_PLAINTEXT")


def test_faust_ssl(ca_file: Path) -> None:
    credentials = faust_credentials(_settings(security_protocol="SSL", ssl_cafile=ca_file))
    assert isinstance(credentials, SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL"
    assert [ca["subject"] for ca in auth["ssl_context"].get_ca_certs()] == [TEST_CA_SUBJECT]


def test_a_workers_consumer_and_producer_take_the_security_and_the_producer_is_idempotent(
    tmp_path: Path, ca_file: Path
) -> None:
    """Built by Faust's own driver, as the worker builds them (nothing connects here)."""
    settings = _sasl("SASL_SSL", ssl_cafile=ca_file, state_dir=tmp_path)
    hub = Hub(settings)

    async def clients() -> tuple[Any, Any]:
        thread = hub.app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(hub.app.transport)
        producer = hub.app.producer._new_producer()  # type: ignore[attr-defined]
        await consumer.stop()  # never started: only closes what the constructor opened
        await producer.stop()
        return consumer, producer

    consumer, producer = asyncio.run(clients())
    for client in (consumer._client, producer.client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "partner-x"
        assert client._ssl_context.get_ca_certs()[0]["subject"] == TEST_CA_SUBJECT
    assert producer._sender._acks == -1
    assert producer._txn_manager is not None  # aiokafka's idempotent producer
