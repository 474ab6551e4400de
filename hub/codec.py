"""The one codec: Avro records to Confluent-framed bytes and back.

Wire format: magic byte 0x00, 4-byte big-endian schema id, Avro binary body. The framing
is five bytes of ``struct``; fastavro does the Avro.

Decoding is hostile-input code: the bytes come from partners, and a record the hub cannot
read must become a ``DecodeError`` (and go to ``hub.dlq``), never stop a stage. What
fastavro 1.13's reader does with bad bytes, found by reading ``fastavro/_read_py.py`` and
fuzzing its compiled twin ``fastavro._read``:

- ``EOFError`` (a length or count past the end, or negative), ``StopIteration``,
  ``struct.error``: the body is truncated;
- ``UnicodeDecodeError``: a string is not UTF-8;
- ``IndexError``: a union branch or enum symbol index is out of range (or, in the
  compiled reader, a number's varint runs past the end);
- ``OverflowError``: a ``timestamp-millis``/``-micros`` or ``date`` beyond what
  ``datetime`` holds (a long is squeezed into a C int, or the date passes year 9999);
- ``ValueError``: a ``date`` before year 1, a ``time-*`` past 24 h, a malformed ``uuid``;
- ``SchemaResolutionError``: the writer's value has no place in the reader's schema;
- ``decimal`` and ``MemoryError`` failures on absurd sizes, kept as a safety net.

Two things are not exceptions at all, and are refused by looking at the writer schema
first: a recursive schema makes the compiled reader recurse in C until the process
segfaults (about 5,000 levels, a few KiB of body), so such records are read with the
pure-Python reader, where the depth ends in ``RecursionError``; and an array whose items
take no bytes (``null``, an empty record) lets a few bytes claim 2**62 items, which no
reader finishes, so such schemas are refused outright.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from typing import Any

import fastavro
from fastavro import _read_py
from fastavro.read import SchemaResolutionError

from hub.errors import DecodeError

__all__ = ["MAGIC", "ParsedSchema", "decode_body", "encode", "split_frame"]

MAGIC = 0
_HEADER = struct.Struct(">bI")

ParsedSchema = dict[str, Any]

# What a writer schema means for reading it (see the module docstring).
_SAFE, _RECURSIVE, _UNBOUNDED = "safe", "recursive", "unbounded"
_SCHEMA_RISKS: dict[int, tuple[object, str]] = {}  # id(schema) -> (schema, risk)
_SCHEMA_RISKS_KEPT = 256


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
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"record value is a {type(data).__name__}, not bytes")
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
    exactly, or it was not what its schema id claims. Every way the Avro reader can fail
    on hostile bytes is a DecodeError whose message names the problem, never a value or
    the bytes.
    """
    risk = _risk_of(writer)
    if risk == _UNBOUNDED:
        raise DecodeError(
            "writer schema has an array whose items take no bytes, so a record can claim "
            "any number of them; the hub does not read it"
        )
    read: Callable[..., Any] = (
        _read_py.schemaless_reader if risk == _RECURSIVE else fastavro.schemaless_reader
    )
    stream = io.BytesIO(body)
    try:
        record = read(
            stream, writer, reader, return_record_name=True, return_record_name_override=True
        )
    except (EOFError, StopIteration, struct.error) as exc:
        raise DecodeError(
            f"Avro body is truncated ({len(body)} bytes): {type(exc).__name__}"
        ) from None
    except SchemaResolutionError as exc:
        raise DecodeError(f"Avro body cannot be read as this hub's version of it: {exc}") from None
    except UnicodeDecodeError:
        raise DecodeError("Avro body does not match its schema: a string is not UTF-8") from None
    except IndexError:  # the compiled reader's too: a varint that runs off the end
        raise DecodeError(
            "Avro body does not match its schema: a union branch or enum symbol index is "
            "out of range, or a number runs past the end of the body"
        ) from None
    except OverflowError:
        raise DecodeError(
            "Avro body does not match its schema: a number is out of range for its type "
            "(e.g. a timestamp or date that no calendar date matches)"
        ) from None
    except RecursionError:
        raise DecodeError("Avro body nests records too deeply to read") from None
    except MemoryError:
        raise DecodeError("Avro body claims a length too large to read") from None
    except (ValueError, ArithmeticError, TypeError, KeyError, AttributeError) as exc:
        # ValueError: a date, time or uuid its logical type cannot hold
        raise DecodeError(
            f"Avro body does not match its schema: a value is invalid for its type "
            f"({type(exc).__name__})"
        ) from None
    except Exception as exc:  # a reader failure not met yet must not stop a stage either
        raise DecodeError(f"Avro body cannot be read: {type(exc).__name__}") from None
    if stream.tell() != len(body):
        raise DecodeError(
            f"Avro body has {len(body) - stream.tell()} trailing bytes after the record"
        )
    if not isinstance(record, dict):
        raise DecodeError("Avro body is not a record")
    return record


def _risk_of(schema: Any) -> str:
    """How records of the parsed writer ``schema`` may be read (cached per schema object)."""
    cached = _SCHEMA_RISKS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    risk = _assess(schema)
    if len(_SCHEMA_RISKS) >= _SCHEMA_RISKS_KEPT:
        _SCHEMA_RISKS.clear()
    _SCHEMA_RISKS[id(schema)] = (schema, risk)  # holding it keeps its id from being reused
    return risk


def _assess(schema: Any) -> str:
    named: dict[str, Any] = {}
    recursive = False

    def walk(node: Any, enclosing: frozenset[str]) -> bool:
        """True if ``node`` holds an array of items that take no bytes."""
        nonlocal recursive
        if isinstance(node, str):
            recursive = recursive or node in enclosing
            return False
        if isinstance(node, list):
            return any(walk(branch, enclosing) for branch in node)
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            named[node["name"]] = node
        if kind in ("record", "error"):
            inner = enclosing | {node["name"]}
            return any(walk(field["type"], inner) for field in node.get("fields", []))
        if kind == "array":
            return _takes_no_bytes(node["items"], named, set()) or walk(node["items"], enclosing)
        if kind == "map":
            return walk(node["values"], enclosing)
        return isinstance(kind, dict | list) and walk(kind, enclosing)

    if walk(schema, frozenset()):
        return _UNBOUNDED
    return _RECURSIVE if recursive else _SAFE


def _takes_no_bytes(node: Any, named: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(node, str):
        if node in named and node not in seen:
            return _takes_no_bytes(named[node], named, seen | {node})
        return node == "null"
    if not isinstance(node, dict):
        return False  # a union always writes its branch index
    kind = node.get("type")
    if kind == "null":
        return True
    if kind == "fixed":
        return bool(node.get("size") == 0)
    if kind in ("record", "error"):
        inner = seen | {node["name"]}
        return all(_takes_no_bytes(field["type"], named, inner) for field in node["fields"])
    return isinstance(kind, dict) and _takes_no_bytes(kind, named, seen)
