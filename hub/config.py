"""Typed settings, read once at start-up from ``PLACEHUB_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigError

__all__ = [
    "PROJECT_ROOT",
    "KafkaSecurity",
    "SaslMechanism",
    "SecurityProtocol",
    "Settings",
    "load_settings",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The test key is public on purpose: tests and the demo must give the same tokens.
TEST_PLACE_KEY = "placehub-test-key-not-for-production"
MIN_SECRET_BYTES = 32  # the worker secret is an HMAC key: 256 bits
MIN_TOKEN_BYTES = 16  # a scrape token is compared, not used as a key

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSecurity(BaseSettings):
    """How every Kafka client of the project connects (``hub.kafka_clients`` turns these
    into each client library's options), checked whole: a part of ``Settings``."""

    model_config = SettingsConfigDict(env_prefix="PLACEHUB_", extra="ignore")

    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT (the local demo), SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", description="How a SASL client proves who it is."
    )
    sasl_username: str | None = Field(
        default=None, description="The principal's name (SASL_PLAINTEXT and SASL_SSL)."
    )
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="The principal's password (preferred to SASL_PASSWORD)."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="The CA the brokers' certificates chain to (SSL and SASL_SSL); the "
        "system's CAs when unset. `placehub broker start --secure` makes the local one.",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="A client certificate, for brokers that ask for one."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="The client certificate's key, if not in ssl_certfile."
    )

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Self:
        """Refuse a security setting the protocol would not use, or one it lacks: either
        would fail only at the first connection, or pass silently unauthenticated."""
        sasl, tls = self.uses_sasl, self.uses_tls
        protocol = f"PLACEHUB_SECURITY_PROTOCOL is {self.security_protocol}"
        if sasl and not self.sasl_username:
            raise ValueError(f"PLACEHUB_SASL_USERNAME: required when {protocol}")
        if sasl and self.sasl_password is None and self.sasl_password_file is None:
            raise ValueError(
                f"PLACEHUB_SASL_PASSWORD_FILE or PLACEHUB_SASL_PASSWORD: required when {protocol}"
            )
        sasl_set = (self.sasl_username, self.sasl_password, self.sasl_password_file)
        if not sasl and any(value is not None for value in sasl_set):
            raise ValueError(
                f"PLACEHUB_SASL_USERNAME/PASSWORD: set, but {protocol}, which uses no SASL"
            )
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ValueError(f"PLACEHUB_SSL_*: set, but {protocol}, which uses no TLS")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("PLACEHUB_SSL_KEYFILE: needs PLACEHUB_SSL_CERTFILE")
        return self

    @property
    def uses_sasl(self) -> bool:
        """Whether Kafka clients log in with SASL (SASL_PLAINTEXT or SASL_SSL)."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        """Whether Kafka clients connect over TLS (SSL or SASL_SSL)."""
        return self.security_protocol.endswith("SSL")

    def sasl_password_value(self) -> str | None:
        """The SASL password (file, then variable), or None if none is set."""
        secret = _secret(self.sasl_password_file, self.sasl_password, "SASL_PASSWORD")
        if secret is not None and not secret:
            raise ConfigError("PLACEHUB_SASL_PASSWORD: empty")
        return None if secret is None else secret.decode()


class Settings(KafkaSecurity):
    """Everything placehub can be configured with; units are in the names (the Kafka
    security part, and the ``PLACEHUB_`` prefix, come from ``KafkaSecurity``)."""

    bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name; lets tests and places share a broker.",
    )
    app_id: str = "placehub"
    partitions: int = Field(default=4, ge=1, le=256)
    replication_factor: int = Field(default=1, ge=1)
    place_key: SecretStr | None = None
    place_key_file: Path | None = None
    allow_test_key: bool = Field(
        default=False,
        description="Let connectors and workers run on the public test place key when no key "
        "is set (the demo and the tests only; its tokens can be reversed by anyone).",
    )
    web_host: str = Field(
        default="127.0.0.1", description="The host other workers reach this worker's API on."
    )
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_bind: str | None = Field(
        default=None,
        description="The address the API listens on; web_host (127.0.0.1) unless set. "
        "0.0.0.0 listens on every interface.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="The bearer token a Prometheus scrape of /metrics presents."
    )
    metrics_token_file: Path | None = None
    worker_secret: SecretStr | None = Field(
        default=None,
        description="Shared by a place's workers to sign their calls to each other (at least "
        "32 bytes). Unset, each worker makes its own and refuses calls between workers.",
    )
    worker_secret_file: Path | None = None
    worker_assertion_ttl_s: float = Field(
        default=30, gt=0, le=300, description="How long a worker's signed call stays valid."
    )
    state_dir: Path = PROJECT_ROOT / ".state"
    store: str = Field(
        default="memory://",
        pattern=r"^(memory|rocksdb)://$",
        description="Where a worker keeps its tables: memory:// (rebuilt from the changelogs "
        "at start) or rocksdb:// (on disk under state_dir, needs the rocksdict package).",
    )
    rocksdb_memory_mb: int = Field(
        default=256,
        ge=16,
        le=65_536,
        description="With rocksdb://, the memory a worker's RocksDB databases share: one "
        "block cache, half of which their write buffers may take.",
    )
    resubscribe_s: float = Field(
        default=5,
        ge=0,
        le=300,
        description="How long a worker waits, once a partner is added while it runs, before "
        "it subscribes to the partner's topics (one rebalance of the group).",
    )
    users_file: Path = PROJECT_ROOT / "deploy" / "local" / "users.yaml"
    partners_file: Path = PROJECT_ROOT / "deploy" / "local" / "partners.yaml"
    agreements_dir: Path = PROJECT_ROOT / "deploy" / "local" / "agreements"
    # Alert rules (YAML, one per file; hub.alerts): none when the folder does not exist.
    alerts_dir: Path = PROJECT_ROOT / "deploy" / "local" / "alerts"
    consent_retention_days: int = Field(default=730, ge=1)
    # How long Kafka keeps personal data on the hub's topics: what erasure must wait for,
    # against what `placehub replay` can rebuild (README, "What happens on withdrawal").
    partner_retention_hours: float = Field(
        default=168,
        gt=0,
        description="Partner topics: replay rebuilds the views from what they still hold.",
    )
    events_retention_hours: float = Field(
        default=168, gt=0, description="hub.events, hub.quarantine and hub.dlq."
    )
    hop_retention_hours: float = Field(
        default=24, gt=0, description="The workers' internal topics between stages."
    )
    compacted_segment_hours: float = Field(
        default=24,
        gt=0,
        description="Compacted topics and changelogs roll a segment this often, so compaction "
        "can clear an erased person's records; their tombstones go after as long again.",
    )
    quarantine_hold_s: float = Field(default=7 * 24 * 3600, gt=0)
    patterns_grace_days: float = Field(
        default=14,
        ge=0,
        description="How long after a pattern window ends (by event time) an event still "
        "counts in it; one later is counted as late instead.",
    )
    flows_within_days: float = Field(
        default=30,
        gt=0,
        description="How soon after an event at one partner an event at another counts as "
        "a transition between them (the flows, counted in the later event's window).",
    )
    patterns_enabled: bool = Field(
        default=True,
        description="Run the patterns stages (the stewards' place aggregates, patterns and "
        "flows, on hub.patterns); off for a place that does not want aggregates: nothing "
        "is counted or published.",
    )
    maintenance_interval_s: float = Field(default=60, gt=0)
    watchdog_interval_s: float = Field(
        default=5,
        gt=0,
        description="How often a worker looks for stream partitions whose commits stopped "
        "at a record (hub.runtime.watchdog): one Faust skipped is read again at the next "
        "look, one stuck at two looks in a row too.",
    )
    consent_backlog_max: int = Field(
        default=5_000,
        ge=1,
        description="Consent records a worker's consent partitions may have unread before "
        "its gate stops reading partner events (resuming at half): a partner's bulk load "
        "sends both, and events read before their consents are only held and released "
        "again (hub.runtime.flow).",
    )
    batch_max: int = Field(
        default=500, ge=1, description="Most partner records the gate decides as one batch."
    )
    fetch_max_wait_ms: int = Field(
        default=20, ge=1, le=1500, description="Longest a worker's fetch waits for data."
    )
    commit_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often a worker commits the offsets of what it finished: after a "
        "crash, up to this much work is done again (and its hub.events re-sent).",
    )
    batch_within_s: float = Field(
        default=0.01, gt=0, description="Longest the gate waits to fill a batch (latency)."
    )
    request_timeout_ms: int = Field(default=30_000, ge=100)
    max_event_bytes: int = Field(
        default=1_000_000, ge=256, description="Largest encoded event a connector will send."
    )
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_max_items: int = Field(default=500, ge=1)
    registry_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body the registry API reads."
    )
    ingest_timeout_ms: int = Field(
        default=10_000, ge=100, description="How long HTTP ingest waits for Kafka before 503."
    )
    ingest_retry_after_s: int = Field(default=5, ge=1)
    broker_port: int = Field(default=19092, ge=1, le=65535)
    controller_port: int = Field(default=19093, ge=1, le=65535)
    broker_heap_mb: int = Field(default=512, ge=128)
    broker_dir: Path = PROJECT_ROOT / ".state" / "broker"
    broker_secure: bool = Field(
        default=False,
        description="`placehub broker start` runs a secured cluster: SASL_SSL (SCRAM-SHA-512) "
        "listeners with TLS from a local CA, and ACLs (hub.broker_security).",
    )
    jar_cache_dir: Path = PROJECT_ROOT / ".cache" / "kafka"

    @property
    def canonical_url(self) -> str:
        """This worker's own URL, as other workers reach it."""
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def web_bind_host(self) -> str:
        """The address the worker's API listens on."""
        return self.web_bind or self.web_host

    def metrics_token_value(self) -> str | None:
        """The scrape token for ``/metrics`` (file, then variable), or None if none is set."""
        secret = _secret(self.metrics_token_file, self.metrics_token, "METRICS_TOKEN")
        if secret is not None and len(secret) < MIN_TOKEN_BYTES:
            raise ConfigError(f"PLACEHUB_METRICS_TOKEN: shorter than {MIN_TOKEN_BYTES} bytes")
        return None if secret is None else secret.decode()

    def worker_secret_bytes(self) -> bytes | None:
        """The secret workers sign their calls to each other with, or None if none is set."""
        secret = _secret(self.worker_secret_file, self.worker_secret, "WORKER_SECRET")
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"PLACEHUB_WORKER_SECRET: shorter than {MIN_SECRET_BYTES} bytes")
        return secret

    def place_key_bytes(self) -> bytes:
        """The HMAC key for pseudonymisation: from the file, the variable, or the test key."""
        if self.place_key_file is not None:
            try:
                return self.place_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    f"PLACEHUB_PLACE_KEY_FILE: cannot read {self.place_key_file}: {exc.strerror}"
                ) from exc
        if self.place_key is not None:
            return self.place_key.get_secret_value().encode()
        return TEST_PLACE_KEY.encode()


def _secret(path: Path | None, value: SecretStr | None, name: str) -> bytes | None:
    """A secret from ``PLACEHUB_<name>_FILE`` (preferred) or ``PLACEHUB_<name>``."""
    if path is not None:
        try:
            return path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"PLACEHUB_{name}_FILE: cannot read {path}: {exc.strerror}") from exc
    return None if value is None else value.get_secret_value().encode()


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings from the environment, failing fast with the offending key named."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    """One validation error as ``PLACEHUB_<KEY>: rule``; a check across several settings
    (no location) names its keys itself."""
    if not loc:
        return msg.removeprefix("Value error, ")
    return f"PLACEHUB_{'_'.join(str(p) for p in loc).upper()}: {msg}"
