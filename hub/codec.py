"""The one codec: Avro records to Confluent-framed bytes and back.

Wire format: magic byte 0x00, 4-byte big-endian schema id, Avro binary body. The framing
is five bytes of ``struct``; fastavro does the Avro.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from hub.errors import DecodeError

__all__ = ["MAGIC", "ParsedSchema", "decode_body", "encode", "split_frame"]

MAGIC = 0
_HEADER = struct.Struct(">bI")

ParsedSchema = dict[str, Any]


def encode(schema: ParsedSchema, schema_id: int, record: Mapping[str, Any]) -> bytes:
    """Frame ``record`` as written with ``schema`` registered under ``schema_id``."""
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC, schema_id))
    fastavro.schemaless_writer(buffer, schema, dict(record))
    return buffer.getvalue()


def split_frame(data: bytes | None) -> tuple[int, bytes]:
    """The schema id and Avro body of a framed record; DecodeError if it is not framed."""
    if data is None:
        raise DecodeError("record has no value (null)")
    if len(data) < _HEADER.size:
        raise DecodeError(f"record is {len(data)} bytes, shorter than the 5-byte Confluent header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(f"first byte is {data[0]:#04x}, not the Confluent magic byte 0x00")
    return schema_id, data[_HEADER.size :]


def decode_body(
    body: bytes, writer: ParsedSchema, reader: ParsedSchema | None = None
) -> dict[str, Any]:
    """Decode an Avro body written with ``writer``, resolved to ``reader`` if given.

    Truncated bodies and trailing garbage are both rejected: a record must be consumed
    exactly, or it was not what its schema id claims.
    """
    stream = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(
            stream, writer, reader, return_record_name=True, return_record_name_override=True
        )
    except (EOFError, StopIteration, struct.error) as exc:
        raise DecodeError(
            f"Avro body is truncated ({len(body)} bytes): {type(exc).__name__}"
        ) from None
    except SchemaResolutionError as exc:
        raise DecodeError(f"Avro body cannot be read as this hub's version of it: {exc}") from None
    except (ValueError, IndexError, UnicodeDecodeError, TypeError) as exc:
        raise DecodeError(
            f"Avro body does not match its schema: {exc.__class__.__name__}"
        ) from None
    if stream.tell() != len(body):
        raise DecodeError(
            f"Avro body has {len(body) - stream.tell()} trailing bytes after the record"
        )
    if not isinstance(record, dict):
        raise DecodeError("Avro body is not a record")
    return record
