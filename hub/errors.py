"""One error root for placehub, split by what the caller does next.

- ``InputError``: the input is wrong; fix it and send again (never retried).
- ``UnavailableError``: something we depend on is down; retry later (``retriable``).
- ``SetupError``: the deployment is wrong (config, missing tools); an operator must act.

Messages name the field and the problem, never a person's data.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "DecodeError",
    "EventRejected",
    "HubError",
    "InputError",
    "RegistryError",
    "SchemaNotFound",
    "SetupError",
    "UnavailableError",
]


class HubError(Exception):
    """Root of every error placehub raises on purpose."""

    retriable: bool = False


class InputError(HubError):
    """Raised when input (an event, record or request) is invalid; resending it fails again."""


class EventRejected(InputError):
    """Raised when an event fails validation; ``errors`` lists (JSON pointer, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{pointer or '/'}: {message}" for pointer, message in errors))


class DecodeError(InputError):
    """Raised when bytes on a topic are not a valid Confluent-framed Avro record."""


class SchemaNotFound(DecodeError):
    """Raised when a record names a schema id the registry does not know."""


class UnavailableError(HubError):
    """Raised when a dependency (broker, registry) cannot be reached; try again later."""

    retriable = True


class BrokerError(UnavailableError):
    """Raised when Kafka does not acknowledge or cannot be reached in time."""


class SetupError(HubError):
    """Raised when the deployment itself is wrong: bad config, missing java/mvn, port in use."""


class ConfigError(SetupError):
    """Raised when a settings value or config file is invalid; the message names the key."""


class RegistryError(InputError):
    """Raised when the schema registry refuses a request (unknown subject, incompatible schema).

    ``error_code`` is the Confluent Schema Registry's code for the refusal (40401 subject not
    found, 409 incompatible, 42201 invalid schema, ...), so the HTTP API can answer as it does.
    """

    def __init__(self, error_code: int, message: str) -> None:
        self.error_code = error_code
        super().__init__(message)

    @property
    def http_status(self) -> int:
        """The HTTP status Confluent pairs with ``error_code`` (its first three digits)."""
        return self.error_code if self.error_code < 1000 else self.error_code // 100
