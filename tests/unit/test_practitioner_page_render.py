"""The practitioners' page as HTML: what each page shows, how it is labelled, and that
nothing in the data can become markup (``hub.practitioner_render``)."""

from __future__ import annotations

from typing import Any

from hub.practitioner_render import FEEDBACK_LABELS, event_label, render, when
from hub.users import Role, User

USER = User(
    id="alex.housing", role=Role.PRACTITIONER, partner="council-housing", token_sha256="0" * 64
)
SIGNED = {"user": USER, "csrf": "csrf-token-1"}
HOSTILE = '<script>alert("x")</script>'


def alert(**changes: Any) -> dict[str, Any]:
    return {
        "alert_id": "a-1",
        "person_id": "p-1",
        "rule": "multi-domain-needs",
        "severity": "HIGH",
        "purpose": "early-help",
        "created_at": "2026-11-03T14:05:00+00:00",
        "raised_at": "2026-11-03T14:05:00+00:00",
        "status": "acknowledged",
        "events": [
            {"event_type": "housing.arrears", "partner_id": "council-housing",
             "occurred_at": "2026-11-01T09:00:00Z"},
            {"event_type": "health.ae_attendance"},
        ],
        "events_withheld": 2,
        "source_refs": ["REF-1"],
    } | changes  # fmt: skip


def test_dates_and_event_types_read_as_words() -> None:
    assert when("2026-11-03T14:05:00+00:00") == "3 Nov 2026, 14:05 UTC"
    assert when("2026-11-03T04:05:00Z") == "3 Nov 2026, 04:05 UTC"
    assert when(None) == "not known"
    assert event_label("housing.notice_served") == "Housing: notice served"
    assert event_label("housing") == "housing"


def test_the_sign_in_form_is_labelled_and_its_error_announced() -> None:
    plain = render("sign_in.html", title="Sign in", user=None, csrf=None, error=None, notice=None)
    assert '<html lang="en">' in plain
    assert '<label for="token">' in plain and 'id="token" name="token"' in plain
    assert 'type="password"' in plain and '<main id="main"' in plain
    assert 'role="alert"' not in plain and "Sign out" not in plain
    failed = render("sign_in.html", title="Sign in", user=None, csrf=None, error="bad", notice=None)
    assert 'role="alert"' in failed and 'aria-invalid="true"' in failed
    assert 'aria-describedby="token-hint token-error"' in failed


def test_the_inbox_lists_alerts_with_what_the_reader_may_see() -> None:
    html = render(
        "inbox.html", title="Alerts", alerts=[alert()], truncated=False,
        rule_titles={"multi-domain-needs": "Needs in three domains"}, **SIGNED,
    )  # fmt: skip
    assert "Alerts for council-housing" in html
    assert 'href="/practitioner/alerts/a-1">Needs in three domains</a>' in html
    assert "Severity: high" in html and "3 Nov 2026, 14:05 UTC" in html
    assert "Status: acknowledged" in html
    assert "2 events shown, 2 withheld" in html and "<code>REF-1</code>" in html
    assert 'role="status" aria-live="polite"' in html
    assert 'name="csrf" value="csrf-token-1"' in html  # the sign-out form
    assert 'src="/practitioner/static/live.js"' in html
    assert 'id="inbox-empty" hidden' in html


def test_an_empty_inbox_says_so() -> None:
    html = render(
        "inbox.html", title="Alerts", alerts=[], truncated=False, rule_titles={}, **SIGNED
    )
    assert 'id="inbox-empty" >' in html or 'id="inbox-empty">' in html


def test_the_alert_page_explains_and_offers_every_verdict_with_the_csrf_token() -> None:
    html = render(
        "alert.html", title="Alert", alert=alert(), rule_title="Needs in three domains",
        recorded=None, error=None, **SIGNED,
    )  # fmt: skip
    for value, label in FEEDBACK_LABELS.items():
        assert f'<button type="submit" name="outcome" value="{value}">{label}</button>' in html
    assert html.count('name="csrf" value="csrf-token-1"') == 2  # feedback and sign-out
    assert '<label for="reason_code">' in html
    assert "Housing: arrears <code>housing.arrears</code>" in html
    # An event shown without its date or partner says so rather than leaving a blank.
    assert html.count("<td>not shared</td>") == 2
    assert "2 more events contributed" in html
    assert 'href="/practitioner/people/p-1"' in html
    recorded = render(
        "alert.html", title="Alert", alert=alert(), rule_title="t", recorded="ACTED",
        error=None, **SIGNED,
    )  # fmt: skip
    assert "your feedback (Acted on it) is recorded" in recorded


def test_nothing_in_the_data_becomes_markup() -> None:
    hostile = alert(rule=HOSTILE, source_refs=[HOSTILE], alert_id=HOSTILE)
    for html in (
        render("inbox.html", title="Alerts", alerts=[hostile], truncated=False,
               rule_titles={HOSTILE: HOSTILE}, **SIGNED),
        render("alert.html", title="Alert", alert=hostile, rule_title=HOSTILE, recorded=None,
               error=HOSTILE, **SIGNED),
    ):  # fmt: skip
        assert "<script>alert" not in html
        assert "&lt;script&gt;" in html


def test_the_timeline_shows_the_presented_view() -> None:
    person = {
        "person_id": "p-1",
        "event_count": 2,
        "partners": {
            "council-housing": {"last_contact": "2026-11-01T09:00:00Z", "source_refs": ["REF-1"]},
            "city-health": {},
        },
        "needs": {"housing": ["arrears"]},
        "lead_partners": [],
        "timeline": [
            {"event_id": "e-1", "event_type": "housing.arrears", "partner_id": "council-housing",
             "occurred_at": "2026-11-01T09:00:00Z", "purpose": "early-help"},
            {"event_id": "e-2", "event_type": "health.ae_attendance"},
        ],
        "area_code": None,
        "age_band": "25-34",
        "last_event_at": "2026-11-01T09:00:00Z",
    }  # fmt: skip
    html = render("person.html", title="Timeline", person=person, **SIGNED)
    assert "<h1>Timeline</h1>" in html and "<code>p-1</code>" in html
    assert "Housing: arrears" in html and "Health: ae attendance" in html
    assert "your records: <code>REF-1</code>" in html
    assert "<dd>not shared</dd>" in html  # the area code
    assert html.count("<td>not shared</td>") == 3  # e-2: date, partner and purpose
