"""The HTTP edge's guards: bounded body reads and bounded, UTF-8-only JSON.

A request body is read only after the caller is known, never past its size limit, and
parsed only if it is UTF-8 JSON within the depth, number and value-count limits, so no
body can make a handler fail with a 500 (``RecursionError``, Python's 4,300-digit integer
limit) or make the worker parse megabytes for nothing. Refusals name the rule, never a
value from the body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeVar

from faust.web import Request, Response, View
from pydantic import BaseModel, ValidationError

from hub.errors import InputError
from hub.serde import validation_errors

__all__ = [
    "JsonLimits",
    "RequestRefused",
    "check_content_type",
    "parse_json",
    "parse_json_text",
    "problem",
    "read_body",
]

# A JSON string, atomically (no backtracking): what the depth scan skips over.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
_DEPTH_STEP = str.maketrans({"[": "+", "{": "+", "]": "-", "}": "-"})
_INT64 = (-(2**63), 2**64)  # signed or unsigned 64-bit


class RequestRefused(InputError):
    """Raised when a request body breaks a rule of the HTTP edge; ``status`` is the reply's."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status, self.title = status, title


@dataclass(frozen=True)
class JsonLimits:
    """How much JSON an endpoint parses: nesting depth, numbers' size, values in all."""

    max_depth: int
    max_values: int
    max_number_chars: int = 100


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The request body; RequestRefused (413) as soon as it is known to be over the limit."""
    too_large = RequestRefused(413, f"the body is over {limit_bytes} bytes")
    declared = request.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    stream: Any = request.content  # type: ignore[attr-defined]  # aiohttp's request
    while chunk := await stream.read(65_536):
        size += len(chunk)
        if size > limit_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(header: str | None, require_json: bool = True) -> None:
    """RequestRefused (415) unless the Content-Type (if any) is JSON in UTF-8."""
    if not header:
        return
    media_type, *params = (part.strip().lower() for part in header.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise RequestRefused(415, "the body must be JSON in UTF-8 (charset=utf-8)")
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if require_json and not is_json:
        raise RequestRefused(415, "the body must be JSON (Content-Type: application/json)")


def parse_json(body: bytes, limits: JsonLimits) -> Any:
    """``body`` parsed as UTF-8 JSON within ``limits``; RequestRefused (400, 413 or 415)."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(body) >= 2 and 0 in body[:4]):
        raise RequestRefused(415, "the body must be JSON in UTF-8; it looks like UTF-16 or -32")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRefused(400, "the body is not UTF-8 text") from None
    return parse_json_text(text, limits)


def parse_json_text(text: str, limits: JsonLimits, what: str = "the body") -> Any:
    """``text`` parsed as JSON within ``limits``; RequestRefused names ``what`` and the rule."""
    if _depth(text) > limits.max_depth:
        raise RequestRefused(400, f"{what} is nested deeper than {limits.max_depth} levels")
    numbers = _Numbers(limits.max_number_chars, what)
    try:
        value = json.loads(
            text,
            parse_int=numbers.integer,
            parse_float=numbers.decimal,
            parse_constant=numbers.constant,
        )
    except RequestRefused:
        raise
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise RequestRefused(400, f"{what} is not valid JSON at {where}") from None
    except (ValueError, RecursionError):
        raise RequestRefused(400, f"{what} is not valid JSON") from None
    if _count_values(value, limits.max_values) > limits.max_values:
        raise RequestRefused(413, f"{what} holds more than {limits.max_values} JSON values")
    return value


def _depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (strings skipped), without parsing it."""
    steps = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_DEPTH_STEP)
    return max(accumulate(1 if step == "+" else -1 for step in steps), default=0)


def _count_values(value: Any, limit: int) -> int:
    """The number of JSON values in ``value`` (stops counting once past ``limit``)."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class _Numbers:
    """``json.loads`` hooks that refuse numbers a 64-bit consumer could not hold."""

    def __init__(self, max_chars: int, what: str) -> None:
        self.max_chars, self.what = max_chars, what

    def integer(self, text: str) -> int:
        if len(text) > 21:  # a sign and 20 digits: 2**64 has 20
            raise RequestRefused(400, f"{self.what} holds an integer outside the 64-bit range")
        value = int(text)
        if not _INT64[0] <= value < _INT64[1]:
            raise RequestRefused(400, f"{self.what} holds an integer outside the 64-bit range")
        return value

    def decimal(self, text: str) -> float:
        if len(text) > self.max_chars:
            raise RequestRefused(
                400, f"{self.what} holds a number longer than {self.max_chars} characters"
            )
        value = float(text)
        if not math.isfinite(value):
            raise RequestRefused(400, f"{self.what} holds a number out of range")
        return value

    def constant(self, text: str) -> Any:
        raise RequestRefused(400, f"{self.what} holds NaN or Infinity, which JSON does not allow")


def problem(
    view: View, status: int, title: str, errors: Sequence[tuple[str, str]] = ()
) -> Response:
    """An RFC 9457-style problem reply: the status and a title naming the rule broken, with
    ``errors`` as ``{"pointer", "message"}`` (never a value) when there are any."""
    body: dict[str, Any] = {"status": status, "title": title}
    if errors:
        body["errors"] = [{"pointer": p, "message": m} for p, m in errors]
    return view.json(body, status=status)


M = TypeVar("M", bound=BaseModel)


async def json_body(
    view: View, request: Request, model: type[M], limit_bytes: int, limits: JsonLimits, what: str
) -> M | Response:
    """A small JSON body as ``model``, or the problem reply to send instead: the status of a
    refused body (too large, too deep, not JSON), else 422 naming each field and rule
    (``what`` is not valid), never a value."""
    try:
        return model.model_validate(parse_json(await read_body(request, limit_bytes), limits))
    except RequestRefused as exc:
        return problem(view, exc.status, exc.title)
    except ValidationError as exc:
        return problem(view, 422, f"{what} is not valid", validation_errors(exc))
