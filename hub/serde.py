"""Models to framed bytes and back, through the registry: the hub's one serialiser."""

from __future__ import annotations

import contextlib
import re
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import ValidationError

from hub.codec import decode_body, encode, split_frame
from hub.errors import DecodeError, EventRejected, HubError
from hub.models import AvroRecord
from hub.schema_files import RegisteredSchema, load_schema

__all__ = ["FIELD_NAME", "AvroModel", "SchemaSource", "Serde", "validation_errors"]


class AvroModel(Protocol):
    """A model with an ``.avsc`` file named by ``avro_schema``."""

    avro_schema: ClassVar[str]

    def to_avro(self) -> dict[str, Any]: ...


class SchemaSource(Protocol):
    """Where schemas are registered and looked up (the ``_schemas`` topic, or a test dict)."""

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema: ...

    def knows(self, schema_id: int) -> bool: ...

    def by_id(self, schema_id: int) -> RegisteredSchema: ...


M = TypeVar("M", bound=AvroRecord)


class Serde:
    """Encodes models under a subject and decodes framed records by their schema id."""

    def __init__(self, registry: SchemaSource) -> None:
        self.registry = registry
        self._registered: dict[tuple[str, str], RegisteredSchema] = {}
        self._readers: dict[str, RegisteredSchema] = {}

    def schema_for(self, schema_name: str, subject: str) -> RegisteredSchema:
        """The registered schema ``schema_name`` under ``subject`` (registers it once)."""
        key = (schema_name, subject)
        found = self._registered.get(key)
        if found is None:
            found = self.registry.register(subject, load_schema(schema_name))
            self._registered[key] = found
        return found

    def needs_lookup(self, data: bytes | None) -> bool:
        """True if decoding ``data`` would have to read the registry topic first."""
        try:
            schema_id, _ = split_frame(data)
        except DecodeError:
            return False
        return not self.registry.knows(schema_id)

    def lookup(self, data: bytes | None) -> None:
        """Load the writer schema of ``data`` into the cache (blocking; run it in a thread)."""
        with contextlib.suppress(DecodeError):  # the decode that follows reports it
            self.registry.by_id(split_frame(data)[0])

    def encode(self, model: AvroModel, subject: str) -> bytes:
        """Framed Avro bytes of ``model`` under ``subject``."""
        registered = self.schema_for(model.avro_schema, subject)
        return encode(registered.parsed, registered.schema_id, model.to_avro())

    def decode_record(self, data: bytes | None, schema_name: str) -> dict[str, Any]:
        """The ``schema_name`` record in ``data``; DecodeError if it cannot be read as one."""
        schema_id, body = split_frame(data)
        writer = self.registry.by_id(schema_id)
        # An external registry may hold primitive schemas (a JSON string, not an object).
        written = writer.schema.get("name") if isinstance(writer.schema, dict) else None
        if written != schema_name:
            raise DecodeError(
                f"schema id {schema_id} is a {written or 'unnamed schema'}, not a {schema_name}"
            )
        reader = self._reader(schema_name)
        if reader.schema_id == writer.schema_id:
            return decode_body(body, writer.parsed)
        # Another version of the contract: resolve it to ours (new fields dropped, missing
        # ones defaulted), so partners may evolve a schema before or after the hub does.
        return decode_body(body, writer.parsed, reader.parsed)

    def _reader(self, schema_name: str) -> RegisteredSchema:
        found = self._readers.get(schema_name)
        if found is None:
            found = RegisteredSchema.of(load_schema(schema_name))
            self._readers[schema_name] = found
        return found

    def decode(self, data: bytes | None, model: type[M]) -> M:
        """Decode and validate ``data`` as ``model``.

        Raises only InputError subclasses for bad bytes: DecodeError (or SchemaNotFound) if
        ``data`` is not a readable ``model`` record, EventRejected naming the bad fields if
        it is one that breaks the model's rules.
        """
        record = self.decode_record(data, model.avro_schema)
        try:
            return model.from_avro(record)
        except ValidationError as exc:
            raise EventRejected(validation_errors(exc)) from None
        except HubError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            # from_avro's own checks: a payload branch this hub does not know, a payload
            # that is not a (branch, fields) pair, a missing field (named, not its value)
            raise EventRejected([("", str(exc))]) from None
        except Exception as exc:
            # Anything else a hostile record provokes is a rejected record, never a stopped
            # stage; only its kind is named, as its message may quote a value.
            raise EventRejected(
                [("", f"record cannot be read as a {model.__name__} ({type(exc).__name__})")]
            ) from None


# What a field's name looks like: an unknown key that does not may be a value (an NHS
# number used as a key), so it is not repeated in an error.
FIELD_NAME = re.compile(r"[a-z][a-z_]{0,39}")


def validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(JSON pointer, message) pairs for a pydantic error, without echoing input values:
    an unknown key that is not a field's name is shown as ``-``."""
    errors = []
    for err in exc.errors(include_input=False):
        loc = [str(part) for part in err["loc"]]
        if err["type"] == "extra_forbidden" and loc and not FIELD_NAME.fullmatch(loc[-1]):
            loc[-1] = "-"
        errors.append(("/" + "/".join(loc), err["msg"]))
    return errors
