"""A local certificate authority for the secured development cluster's TLS listeners.

Why: the secured local cluster (``placehub broker start --secure``) speaks TLS on every
listener, and a place trying it out has no CA of its own. So the set-up makes one under
the broker folder (never committed): a CA key and certificate, and for each node a key
and certificate signed by it, valid for ``127.0.0.1`` and ``localhost``. Clients trust the
CA file (``PLACEHUB_SSL_CAFILE``); the nodes prove themselves to each other on the
controller listener with their certificates (mutual TLS).

A production cluster uses certificates from the place's own CA instead: put each node's
key and chain (a PKCS#12 file under the key store password) where :func:`node_keystore`
would write them, the CA bundle (PEM) where :func:`ensure_ca` would, and keep the node
certificates' common name ``placehub-broker-<node id>`` (the brokers map it to their
super user, ``broker``).

Every key file is mode 0600; node keys are stored encrypted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.atomic_file import write_atomic

__all__ = [
    "CA_DAYS",
    "NODE_COMMON_NAME",
    "NODE_DAYS",
    "LocalCa",
    "ensure_ca",
    "node_common_name",
    "node_keystore",
]

CA_DAYS = 3650
NODE_DAYS = 825
NODE_COMMON_NAME = "placehub-broker-{node_id}"
_CA_NAME = "placehub local CA"


def node_common_name(node_id: int) -> str:
    """The CN of node ``node_id``'s certificate (the brokers map it to ``User:broker``)."""
    return NODE_COMMON_NAME.format(node_id=node_id)


@dataclass(frozen=True)
class LocalCa:
    """The CA's certificate file and the key that signs node certificates."""

    cert_file: Path
    key_file: Path

    def load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The CA certificate and private key, read from their files."""
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca(directory: Path) -> LocalCa:
    """The CA under ``directory`` (``ca.pem``, ``ca.key``), made the first time only."""
    ca = LocalCa(directory / "ca.pem", directory / "ca.key")
    if ca.cert_file.exists() and ca.key_file.exists():
        return ca
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(
        ca.key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    ca.cert_file.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca


def node_keystore(ca: LocalCa, node_id: int, path: Path, password: str) -> Path:
    """Node ``node_id``'s PKCS#12 key store at ``path`` (its key, its certificate, the CA's),
    issued the first time only; serves and authenticates as 127.0.0.1/localhost."""
    if path.exists():
        return path
    ca_cert, ca_key = ca.load()
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_common_name(node_id))])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=NODE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # PKCS#12 with PBES2/AES-256 and an HMAC-SHA256 MAC: what Java 17 reads (it reads no
    # PBES2-encrypted PEM key, and Kafka's PEM key stores require an encrypted key).
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    data = pkcs12.serialize_key_and_certificates(
        node_common_name(node_id).encode(), key, cert, [ca_cert], encryption
    )
    write_atomic(path, data, 0o600)
    return path
