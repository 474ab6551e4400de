"""The webhook signature a partner's receiver checks (connectors.webhooks): a genuine,
fresh, new notification passes; a tampered body, an old timestamp, a replayed delivery, a
secret not shared and a malformed header do not; two secrets work during a rotation."""

from __future__ import annotations

import time

import pytest

from connectors import DuplicateDelivery, WebhookRejected, WebhookVerifier
from connectors.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, signature_header

SECRET = b"s" * 32
NEW_SECRET = b"n" * 32
BODY = b'{"type":"alert.raised","delivery_id":"d-1","alert_id":"a-1"}'


def headers(
    body: bytes = BODY,
    secrets: list[bytes] | None = None,
    at: float | None = None,
    delivery: str = "d-1",
) -> dict[str, str]:
    timestamp = int(time.time() if at is None else at)
    return {
        SIGNATURE_HEADER: signature_header(secrets or [SECRET], body, timestamp),
        DELIVERY_HEADER: delivery,
    }


def reason(verifier: WebhookVerifier, body: bytes, given: dict[str, str]) -> str:
    with pytest.raises(WebhookRejected) as caught:
        verifier.verify(body, given)
    return caught.value.reason


def test_a_genuine_notification_passes_and_gives_its_body() -> None:
    assert WebhookVerifier([SECRET]).verify(BODY, headers())["alert_id"] == "a-1"


def test_header_names_are_matched_whatever_their_case() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert WebhookVerifier([SECRET]).verify(BODY, lowered)["type"] == "alert.raised"


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"a-1", b"a-2")
    assert reason(WebhookVerifier([SECRET]), tampered, headers()) == "signature-mismatch"


def test_another_secret_is_refused() -> None:
    given = headers(secrets=[b"x" * 32])
    assert reason(WebhookVerifier([SECRET]), BODY, given) == "signature-mismatch"


def test_a_timestamp_outside_the_tolerance_is_refused_either_way() -> None:
    verifier = WebhookVerifier([SECRET], tolerance_s=300)
    old, ahead = time.time() - 301, time.time() + 301
    assert reason(verifier, BODY, headers(at=old)) == "timestamp-outside-tolerance"
    assert reason(verifier, BODY, headers(at=ahead)) == "timestamp-outside-tolerance"
    assert verifier.verify(BODY, headers(at=time.time() - 290))["alert_id"] == "a-1"


def test_a_timestamp_changed_after_signing_is_refused() -> None:
    given = headers()
    signed_at = int(given[SIGNATURE_HEADER].split(",")[0].removeprefix("t="))
    given[SIGNATURE_HEADER] = given[SIGNATURE_HEADER].replace(
        f"t={signed_at}", f"t={signed_at + 1}"
    )
    assert reason(WebhookVerifier([SECRET]), BODY, given) == "signature-mismatch"


def test_a_replayed_delivery_is_a_duplicate_to_acknowledge() -> None:
    verifier = WebhookVerifier([SECRET])
    verifier.verify(BODY, headers())
    with pytest.raises(DuplicateDelivery):
        verifier.verify(BODY, headers())  # signed again: a retry of the same delivery
    assert verifier.verify(BODY, headers(delivery="d-2"))["alert_id"] == "a-1"


def test_the_oldest_delivery_ids_are_forgotten_past_the_limit() -> None:
    verifier = WebhookVerifier([SECRET], remember=2)
    for delivery in ("d-1", "d-2", "d-3"):
        verifier.verify(BODY, headers(delivery=delivery))
    verifier.verify(BODY, headers(delivery="d-1"))  # forgotten, so new again
    with pytest.raises(DuplicateDelivery):
        verifier.verify(BODY, headers(delivery="d-3"))


def test_a_rotation_signs_with_both_secrets_and_either_receiver_accepts() -> None:
    given = headers(secrets=[NEW_SECRET, SECRET])
    assert given[SIGNATURE_HEADER].count("v1=") == 2
    assert WebhookVerifier([SECRET]).verify(BODY, given)["alert_id"] == "a-1"
    assert WebhookVerifier([NEW_SECRET]).verify(BODY, given)["alert_id"] == "a-1"
    # A receiver part-way through holds both, and takes the hub's old signature too.
    assert WebhookVerifier([NEW_SECRET, SECRET]).verify(BODY, headers())["alert_id"] == "a-1"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "signature-missing"),
        ({SIGNATURE_HEADER: "v1=abc"}, "signature-malformed"),
        ({SIGNATURE_HEADER: f"t={int(time.time())}"}, "signature-malformed"),
        ({SIGNATURE_HEADER: "t=soon,v1=abc"}, "signature-malformed"),
    ],
)
def test_a_missing_or_malformed_signature_is_refused(given: dict[str, str], expected: str) -> None:
    assert reason(WebhookVerifier([SECRET]), BODY, given) == expected


def test_a_genuine_request_without_a_delivery_id_is_refused() -> None:
    given = headers()
    del given[DELIVERY_HEADER]
    assert reason(WebhookVerifier([SECRET]), BODY, given) == "delivery-missing"


def test_a_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookVerifier([])
    with pytest.raises(ValueError, match="secret"):
        WebhookVerifier([b""])
