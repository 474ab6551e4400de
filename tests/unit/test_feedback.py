"""Feedback on alerts: the body's rules, and each rule's usefulness by partner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from hub.feedback import FeedbackBody, usefulness
from hub.models import AlertFeedback, FeedbackOutcome
from hub.serde import validation_errors
from tests.unit import factories


def verdict(alert: str, partner: str, outcome: FeedbackOutcome, minutes: int = 0) -> AlertFeedback:
    return AlertFeedback(
        feedback_id=f"f-{alert}-{partner}-{minutes}",
        alert_id=alert,
        partner_id=partner,
        practitioner_role="practitioner",
        outcome=outcome,
        at=factories.WHEN + timedelta(minutes=minutes),
        rule_code="repeat-ae-attendance",
    )


def test_usefulness_counts_each_partners_latest_verdict_on_each_alert_once() -> None:
    found = usefulness(
        [
            verdict("a-1", "city-health", FeedbackOutcome.NOT_USEFUL, 0),
            verdict("a-1", "city-health", FeedbackOutcome.USEFUL, 5),  # changed their mind
            verdict("a-2", "city-health", FeedbackOutcome.ALREADY_KNOWN),
            verdict("a-3", "city-health", FeedbackOutcome.ACTED),
            verdict("a-1", "council-housing", FeedbackOutcome.NOT_USEFUL),
        ]
    )
    health = found["repeat-ae-attendance"]["city-health"]
    assert (health["USEFUL"], health["NOT_USEFUL"], health["ALREADY_KNOWN"]) == (1, 0, 1)
    assert (health["verdicts"], health["share_useful"]) == (3, 0.667)  # useful or acted
    assert found["repeat-ae-attendance"]["council-housing"]["share_useful"] == 0.0


def test_a_body_is_a_known_outcome_and_a_code_never_echoed() -> None:
    assert FeedbackBody.model_validate({"outcome": "USEFUL"}).reason_code is None
    for body in (
        {"outcome": "JANE SMITH"},
        {"outcome": "USEFUL", "reason_code": "Jane Smith said so"},
        {"outcome": "USEFUL", "Jane Smith": 1},
    ):
        with pytest.raises(ValidationError) as caught:
            FeedbackBody.model_validate(body)
        assert "Jane" not in str(validation_errors(caught.value))
