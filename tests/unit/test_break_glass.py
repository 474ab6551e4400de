"""Break-glass requests: a coded reason and a bounded written one, never echoed."""

from __future__ import annotations

import json

import pytest

from hub.break_glass import BODY_MAX_BYTES, BadBreakGlass, reason_code_of

REASON = "Police report a credible threat to the person tonight."


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_a_valid_request_gives_its_code_and_keeps_no_reason() -> None:
    assert reason_code_of(body(reason_code="risk-to-life", reason=REASON)) == "risk-to-life"


@pytest.mark.parametrize(
    ("raw", "status", "title"),
    [
        (None, 413, f"the body is over {BODY_MAX_BYTES} bytes"),
        (b"{not json", 400, "the body must be a UTF-8 JSON object"),
        (REASON.encode("utf-16"), 400, "the body must be a UTF-8 JSON object"),
        (b"[" * 5000 + b"]" * 5000, 400, "the body must be a UTF-8 JSON object"),
        (b"[1]", 422, "the body must be a JSON object"),
        (
            body(reason=REASON),
            422,
            "the body must have exactly the fields reason_code and reason",
        ),
        (
            body(reason_code="risk-to-life", reason=REASON, nhs="9434765919"),
            422,
            "the body must have exactly the fields reason_code and reason",
        ),
        (body(reason_code=REASON, reason=REASON), 422, "reason_code: must be one of risk-to-life"),
        (body(reason_code="urgent-care", reason="  short  "), 422, "reason: must be text of 20"),
        (body(reason_code="urgent-care", reason="x" * 1001), 422, "reason: must be text of 20"),
        (body(reason_code="urgent-care", reason=42), 422, "reason: must be text of 20"),
    ],
)
def test_bad_requests_name_the_rule_never_the_value(
    raw: bytes | None, status: int, title: str
) -> None:
    with pytest.raises(BadBreakGlass) as error:
        reason_code_of(raw)
    assert (error.value.status, error.value.title[: len(title)]) == (status, title)
    assert "Police" not in error.value.title and "9434765919" not in error.value.title
