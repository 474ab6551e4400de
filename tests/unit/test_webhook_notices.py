"""What a webhook notification says, who gets one, when it is tried again, and how far a
partition may be committed (hub.webhook_notices); partner webhook config (hub.partners)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.config_files import ConfigFileError
from hub.metrics import Metrics
from hub.models import Alert, AlertSeverity
from hub.partners import load_partners, webhook_secrets
from hub.webhook_notices import (
    ALERT_ERASED,
    ALERT_RAISED,
    Acks,
    backoff_s,
    failure_reason,
    notices,
    told_of,
)
from hub.webhook_sender import WebhookStats

NOW = datetime.now(UTC).replace(microsecond=0)
SOURCE = "hub.alerts:2:40"
PERSON = "p-" + "a" * 20
EVENT = "0b6d4a4e-1f7e-4c8e-9a51-3d2c1b0a9f8e"


def alert(recipients: list[str]) -> Alert:
    return Alert(
        alert_id="a-1",
        person_id=PERSON,
        rule_code="multi-domain-needs",
        severity=AlertSeverity.HIGH,
        explanation=["housing.arrears"],
        event_ids=[EVENT],
        partners=["council-housing"],
        created_at=NOW - timedelta(minutes=1),
        recipients=recipients,
    )


def test_a_raised_alert_tells_each_recipient_with_a_webhook_and_no_one_else() -> None:
    raised = alert(["city-health", "council-housing", "northfield-school"])
    found = notices(
        "a-1", raised, None, {"council-housing", "city-health", "riverside"}, SOURCE, NOW
    )
    assert [n.partner for n in found] == ["city-health", "council-housing"]
    body = json.loads(found[1].body)
    assert body == {
        "type": ALERT_RAISED,
        "delivery_id": found[1].delivery_id,
        "alert_id": "a-1",
        "person_id": PERSON,
        "rule": "multi-domain-needs",
        "severity": "HIGH",
        "raised_at": raised.created_at.isoformat(),
    }


def test_the_body_holds_no_event_or_explanation() -> None:
    (notice,) = notices("a-1", alert(["council-housing"]), None, {"council-housing"}, SOURCE, NOW)
    assert b"housing.arrears" not in notice.body and EVENT.encode() not in notice.body


def test_delivery_ids_are_the_same_when_a_record_is_read_again_and_differ_otherwise() -> None:
    raised = alert(["city-health", "council-housing"])
    first = notices("a-1", raised, None, {"city-health", "council-housing"}, SOURCE, NOW)
    again = notices("a-1", raised, None, {"city-health", "council-housing"}, SOURCE, NOW)
    later = notices("a-1", raised, None, {"city-health", "council-housing"}, "hub.alerts:2:41", NOW)
    ids = [n.delivery_id for n in first]
    assert ids == [n.delivery_id for n in again]
    assert len(set(ids)) == 2 and not set(ids) & {n.delivery_id for n in later}


def test_a_tombstone_tells_the_recipients_of_the_alert_as_last_known() -> None:
    known = told_of(alert(["council-housing", "northfield-school"]))
    found = notices("a-1", None, known, {"council-housing"}, SOURCE, NOW)
    (notice,) = found
    body = json.loads(notice.body)
    assert (body["type"], body["person_id"], body["erased_at"]) == (
        ALERT_ERASED,
        PERSON,
        NOW.isoformat(),
    )
    assert notice.type == ALERT_ERASED
    assert notices("a-1", None, None, {"council-housing"}, SOURCE, NOW) == []  # never known


def test_backoff_doubles_to_its_cap_and_draws_below_it() -> None:
    top = [backoff_s(n, 1.0, 10.0, draw=lambda: 1.0) for n in range(1, 7)]
    assert top == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_s(3, 1.0, 10.0, draw=lambda: 0.25) == 1.0
    assert backoff_s(200, 0.5, 30.0, draw=lambda: 1.0) == 30.0  # no overflow far out
    with pytest.raises(ValueError, match="attempt"):
        backoff_s(0, 1.0, 10.0)


def test_a_failure_is_a_code_never_a_message() -> None:
    assert failure_reason(503, None) == "http-5xx"
    assert failure_reason(404, None) == "http-4xx"
    assert failure_reason(302, None) == "http-3xx"
    assert failure_reason(None, TimeoutError()) == "timeout"
    assert failure_reason(None, ConnectionRefusedError("to 10.0.0.1")) == "refused"


def test_a_partition_is_committed_only_past_records_whose_notices_are_all_done() -> None:
    acks = Acks()
    assert acks.committable(0) is None
    acks.add(0, 10, 0)  # no webhook recipient: done at once
    assert acks.committable(0) == 11
    acks.add(0, 11, 2)
    acks.add(0, 12, 1)
    acks.add(0, 13, 0)
    assert (acks.committable(0), acks.pending()) == (11, 2)
    acks.done(0, 12)  # a later record done first: still held at 11
    assert acks.committable(0) == 11
    acks.done(0, 11)
    assert acks.committable(0) == 11  # one of 11's two notices is still out
    acks.done(0, 11)
    assert (acks.committable(0), acks.pending()) == (14, 0)
    acks.add(1, 5, 1)
    assert acks.snapshot() == {0: 14, 1: 5}
    acks.forget([1])
    acks.done(1, 5)  # a stale task of a revoked partition changes nothing
    assert acks.snapshot() == {0: 14}


def test_each_workers_figures_add_up_with_the_latest_failure() -> None:
    early, late = NOW - timedelta(minutes=5), NOW
    one = {
        "delivered": 2,
        "retried": 1,
        "failed_attempts": 1,
        "dead_lettered": 0,
        "last_delivered_at": early.isoformat(),
        "last_failed_at": late.isoformat(),
        "last_failure": "timeout",
    }
    two = {
        "delivered": 1,
        "retried": 3,
        "failed_attempts": 4,
        "dead_lettered": 1,
        "last_delivered_at": late.isoformat(),
        "last_failed_at": early.isoformat(),
        "last_failure": "http-5xx",
    }
    quiet = WebhookStats().share("council-housing")
    total = WebhookStats.combine([one, two, quiet])
    assert total == {
        "delivered": 3,
        "retried": 4,
        "failed_attempts": 5,
        "dead_lettered": 1,
        "last_delivered_at": late.isoformat(),
        "last_failed_at": late.isoformat(),
        "last_failure": "timeout",
    }


def test_webhook_series_are_declared_at_zero_and_rounded_on_the_way_out() -> None:
    metrics = Metrics()
    metrics.declare_webhooks(["council-housing"])
    text = metrics.exposition().decode()
    assert (
        'placehub_webhook_deliveries_total{outcome="dead_lettered",partner="council-housing"} 0.0'
        in text
    )
    for _ in range(6):
        metrics.count("placehub_webhook_deliveries", ("council-housing", "delivered"))
    metrics.count("placehub_webhook_deliveries", ("council-housing", "retried"))
    metrics.webhook_seconds.labels("council-housing").observe(0.75)
    text = metrics.exposition().decode()
    assert 'outcome="delivered",partner="council-housing"} 5.0' in text
    assert 'outcome="retried",partner="council-housing"} 0.0' in text
    assert 'placehub_webhook_attempt_seconds_count{partner="council-housing"} 0.0' in text
    assert 'placehub_webhook_attempt_seconds_sum{partner="council-housing"} 0.75' in text


PARTNER = """\
partners:
  - id: council-housing
    name: City Council Housing
    sector: housing
    webhook:
{webhook}
"""


def partners_file(tmp_path: Path, webhook: str) -> Path:
    path = tmp_path / "partners.yaml"
    path.write_text(PARTNER.format(webhook=webhook))
    return path


def test_a_webhook_reads_its_secrets_from_the_file_its_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = partners_file(
        tmp_path, "      url: https://hooks.example.org/placehub\n      secret_env: HOOK_SECRET"
    )
    secret = tmp_path / "secret"
    secret.write_text(f"{'n' * 32}\n{'o' * 32}\n")  # a rotation: the new one first
    monkeypatch.setenv("HOOK_SECRET_FILE", str(secret))
    monkeypatch.setenv("HOOK_SECRET", "not-this-one-the-file-comes-first")
    partners = load_partners(path)
    assert partners[0].webhook is not None and partners[0].webhook.max_attempts == 6
    assert webhook_secrets(path, partners) == {"council-housing": [b"n" * 32, b"o" * 32]}


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "neither HOOK_SECRET_FILE nor HOOK_SECRET is set"),
        ({"HOOK_SECRET": "short"}, "shorter than 32 bytes"),
        ({"HOOK_SECRET": "a" * 32 + "\n" + "b" * 32 + "\n" + "c" * 32}, "more than 2 secrets"),
        ({"HOOK_SECRET_FILE": "/nonexistent/secret"}, "HOOK_SECRET_FILE cannot be read"),
    ],
)
def test_a_bad_secret_is_named_at_its_line_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    path = partners_file(
        tmp_path, "      url: https://hooks.example.org/placehub\n      secret_env: HOOK_SECRET"
    )
    for name in ("HOOK_SECRET", "HOOK_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigFileError) as caught:
        webhook_secrets(path, load_partners(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:7: partners.0.webhook.secret_env: ")
    assert problem in message
    assert "short" not in message.split(": ", 2)[2].replace("shorter", "")


@pytest.mark.parametrize(
    ("webhook", "problem"),
    [
        ("      url: http://hooks.example.org/\n      secret_env: HOOK_SECRET", "https"),
        ("      url: ftp://hooks.example.org/\n      secret_env: HOOK_SECRET", "http(s)"),
        ("      url: https://u:p@hooks.example.org/\n      secret_env: HOOK_SECRET", "credentials"),
        ("      url: https://hooks.example.org/\n      secret: abc", "secret"),
        ("      url: https://h.example.org/\n      secret_env: S\n", "secret_env"),
        (
            "      url: https://h.example.org/\n      secret_env: HOOK_SECRET\n"
            "      max_attempts: 0",
            "max_attempts",
        ),
    ],
)
def test_a_bad_webhook_is_refused_with_file_line_and_key(
    tmp_path: Path, webhook: str, problem: str
) -> None:
    path = partners_file(tmp_path, webhook)
    with pytest.raises(ConfigFileError) as caught:
        load_partners(path)
    assert str(caught.value).startswith(f"{path}:")
    assert "partners.0.webhook" in str(caught.value) and problem in str(caught.value)
    assert "u:p" not in str(caught.value)


def test_plain_http_is_taken_only_when_allowed(tmp_path: Path) -> None:
    path = partners_file(
        tmp_path,
        "      url: http://127.0.0.1:8080/hook\n      secret_env: HOOK_SECRET\n"
        "      allow_http: true",
    )
    (partner,) = load_partners(path)
    assert partner.webhook is not None and partner.webhook.url.startswith("http://")
