"""Alert rules as code: the shipped rules fire on crafted timelines and not on near misses;
bad rule files are refused naming file, line, key and reason; cooldown and escalation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.alerts import (
    KNOWN_EVENT_TYPES,
    Decision,
    OpenAlert,
    RuleBook,
    RuleError,
    decide,
    evaluate,
    evaluate_book,
    load_rules,
    next_close,
)
from hub.config import PROJECT_ROOT
from hub.errors import ConfigError, InputError
from hub.models import PAYLOAD_MODELS
from hub.partners import load_partners
from hub.stages.view import TimelineEntry

NOW = datetime.now(UTC)
PARTNERS = [p.id for p in load_partners(PROJECT_ROOT / "deploy/local/partners.yaml")]
RULES = load_rules(PROJECT_ROOT / "deploy/local/alerts", PARTNERS)

Spec = tuple[str, float, str]  # event type, days before now, partner


def timeline(*specs: Spec) -> list[dict[str, Any]]:
    """Plain timeline entries, each with a fresh event id."""
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "partner_id": partner,
            "occurred_at": NOW - timedelta(days=days_ago),
        }
        for event_type, days_ago, partner in specs
    ]


# Old events that would count for most rules if windows were ignored.
OLD: list[Spec] = [
    ("housing.arrears", 400, "council-housing"),
    ("social_care.plan_opened", 400, "city-children-services"),
    ("health.ae_attendance", 400, "city-health"),
    ("education.attendance", 400, "northfield-school"),
]

# rule code -> (events that fire it, its strength, near misses by name)
CASES: dict[str, tuple[list[Spec], int, dict[str, list[Spec]]]] = {
    "multi-domain-needs": (
        [
            ("housing.arrears", 89, "council-housing"),
            ("education.attendance", 40, "northfield-school"),
            ("health.ae_attendance", 1, "city-health"),
        ],
        3,
        {
            "two domains": [
                ("housing.arrears", 89, "council-housing"),
                ("housing.notice_served", 40, "council-housing"),
                ("health.ae_attendance", 1, "city-health"),
            ],
            "one outside the window": [
                ("housing.arrears", 91, "council-housing"),
                ("education.attendance", 40, "northfield-school"),
                ("health.ae_attendance", 1, "city-health"),
            ],
            "a GP registration is not a need": [
                ("housing.arrears", 89, "council-housing"),
                ("education.attendance", 40, "northfield-school"),
                ("health.gp_registration", 1, "city-gp-federation"),
            ],
        },
    ),
    "housing-crisis-and-school": (
        [
            ("housing.notice_served", 50, "council-housing"),
            ("education.suspension", 3, "northfield-school"),
        ],
        2,
        {
            "arrears are not a crisis yet": [
                ("housing.arrears", 50, "council-housing"),
                ("education.suspension", 3, "northfield-school"),
            ],
            "notice outside the window": [
                ("housing.notice_served", 61, "council-housing"),
                ("education.suspension", 3, "northfield-school"),
            ],
            "no school event": [
                ("housing.homelessness_presentation", 50, "council-housing"),
                ("health.ae_attendance", 3, "city-health"),
            ],
        },
    ),
    "repeat-ae-attendance": (
        [
            ("health.ae_attendance", 29, "city-health"),
            ("health.ae_attendance", 10, "city-health"),
            ("health.ae_attendance", 0.5, "city-health"),
        ],
        3,
        {
            "two attendances": [
                ("health.ae_attendance", 10, "city-health"),
                ("health.ae_attendance", 0.5, "city-health"),
            ],
            "one outside the window": [
                ("health.ae_attendance", 31, "city-health"),
                ("health.ae_attendance", 10, "city-health"),
                ("health.ae_attendance", 0.5, "city-health"),
            ],
            "one after now": [
                ("health.ae_attendance", 29, "city-health"),
                ("health.ae_attendance", 10, "city-health"),
                ("health.ae_attendance", -0.01, "city-health"),
            ],
        },
    ),
    "sanction-then-food-bank": (
        [
            ("welfare.sanction", 40, "city-jobcentre"),
            ("community.food_bank", 20, "city-foodbank"),
        ],
        1,
        {
            "wrong order": [
                ("community.food_bank", 40, "city-foodbank"),
                ("welfare.sanction", 20, "city-jobcentre"),
            ],
            "more than 28 days apart": [
                ("welfare.sanction", 49, "city-jobcentre"),
                ("community.food_bank", 20, "city-foodbank"),
            ],
            "a claim change is not a sanction": [
                ("welfare.claim_change", 40, "city-jobcentre"),
                ("community.food_bank", 20, "city-foodbank"),
            ],
        },
    ),
    "concern-during-open-plan": (
        [
            ("social_care.plan_opened", 200, "city-children-services"),
            ("police.welfare_concern", 2, "city-police"),
        ],
        1,
        {
            "plan closed before the concern": [
                ("social_care.plan_opened", 200, "city-children-services"),
                ("social_care.plan_closed", 100, "city-children-services"),
                ("police.welfare_concern", 2, "city-police"),
            ],
            "concern before the plan": [
                ("police.welfare_concern", 200, "city-police"),
                ("social_care.plan_opened", 2, "city-children-services"),
            ],
            "plan opened outside the window": [
                ("social_care.plan_opened", 366, "city-children-services"),
                ("police.welfare_concern", 2, "city-police"),
            ],
        },
    ),
    "school-absence-and-mental-health": (
        [
            ("education.child_missing_education", 30, "southside-primary"),
            ("health.mental_health_referral", 2, "minds-matter"),
        ],
        2,
        {
            "an exclusion is not absence": [
                ("education.exclusion", 30, "northfield-school"),
                ("health.mental_health_referral", 2, "minds-matter"),
            ],
            "absence outside the window": [
                ("education.child_missing_education", 61, "southside-primary"),
                ("health.mental_health_referral", 2, "minds-matter"),
            ],
            "A&E is not a referral": [
                ("education.child_missing_education", 30, "southside-primary"),
                ("health.ae_attendance", 2, "city-health"),
            ],
        },
    ),
    "arrears-then-notice": (
        [
            ("housing.arrears", 100, "riverside-homes"),
            ("housing.notice_served", 15, "riverside-homes"),
        ],
        1,
        {
            "notice first": [
                ("housing.notice_served", 100, "riverside-homes"),
                ("housing.arrears", 15, "riverside-homes"),
            ],
            "more than 90 days apart": [
                ("housing.arrears", 110, "riverside-homes"),
                ("housing.notice_served", 15, "riverside-homes"),
            ],
        },
    ),
    "many-services-involved": (
        [
            ("housing.arrears", 170, "council-housing"),
            ("education.attendance", 100, "northfield-school"),
            ("health.ae_attendance", 50, "city-health"),
            ("health.mental_health_referral", 1, "minds-matter"),
        ],
        4,
        {
            "three partners": [
                ("housing.arrears", 170, "council-housing"),
                ("housing.notice_served", 100, "council-housing"),
                ("health.ae_attendance", 50, "city-health"),
                ("health.mental_health_referral", 1, "minds-matter"),
            ],
            "one outside the window": [
                ("housing.arrears", 181, "council-housing"),
                ("education.attendance", 100, "northfield-school"),
                ("health.ae_attendance", 50, "city-health"),
                ("health.mental_health_referral", 1, "minds-matter"),
            ],
        },
    ),
}


def test_every_shipped_rule_has_a_case() -> None:
    assert len(RULES) >= 6
    assert set(CASES) == set(RULES.by_code)


@pytest.mark.parametrize("code", sorted(CASES))
def test_shipped_rule_fires_on_its_timeline(code: str) -> None:
    specs, strength, _ = CASES[code]
    events = timeline(*specs)
    rule = RULES.by_code[code]
    match = evaluate(rule, events + timeline(*OLD), NOW)
    assert match is not None
    assert match.rule_code == code
    assert match.strength == strength
    assert match.event_ids == [e["event_id"] for e in events]  # in time order, none old
    assert match.partners == sorted({e["partner_id"] for e in events})
    assert match.explanation == sorted({e["event_type"] for e in events})
    oldest = min(e["occurred_at"] for e in events)
    assert match.closes_at == oldest + timedelta(days=rule.window_days)


@pytest.mark.parametrize(
    ("code", "miss"), [(code, miss) for code, (_, _, misses) in CASES.items() for miss in misses]
)
def test_shipped_rule_does_not_fire_on_a_near_miss(code: str, miss: str) -> None:
    specs = CASES[code][2][miss]
    assert evaluate(RULES.by_code[code], timeline(*specs, *OLD), NOW) is None


def test_a_plan_opened_again_after_closing_is_open() -> None:
    rule = RULES.by_code["concern-during-open-plan"]
    events = timeline(
        ("social_care.plan_opened", 300, "city-children-services"),
        ("social_care.plan_closed", 200, "city-children-services"),
        ("social_care.plan_opened", 100, "city-children-services"),
        ("police.domestic_incident", 2, "city-police"),
    )
    match = evaluate(rule, events, NOW)
    assert match is not None
    assert match.event_ids == [events[2]["event_id"], events[3]["event_id"]]


def test_sequence_strength_counts_each_later_event_paired() -> None:
    rule = RULES.by_code["sanction-then-food-bank"]
    events = timeline(
        ("welfare.sanction", 40, "city-jobcentre"),
        ("community.food_bank", 30, "city-foodbank"),
        ("community.food_bank", 20, "city-foodbank"),
        ("community.food_bank", 5, "city-foodbank"),  # 35 days after the sanction
    )
    match = evaluate(rule, events, NOW)
    assert match is not None and match.strength == 2
    assert match.event_ids == [e["event_id"] for e in events[:3]]


def test_timeline_entries_read_like_plain_mappings() -> None:
    rule = RULES.by_code["repeat-ae-attendance"]
    events = timeline(*CASES["repeat-ae-attendance"][0])
    entries = [
        TimelineEntry(
            **event, purpose="early-help", basis="consent:c-1", source_ref="R-1", tokens=["t:1"]
        )
        for event in events
    ]
    from_entries, from_dicts = evaluate(rule, entries, NOW), evaluate(rule, events, NOW)
    assert from_entries is not None and from_entries == from_dicts


def test_an_event_counts_once_however_often_it_is_listed() -> None:
    rule = RULES.by_code["repeat-ae-attendance"]
    events = timeline(("health.ae_attendance", 3, "city-health"))
    assert evaluate(rule, events * 3, NOW) is None


def test_times_without_a_timezone_are_refused() -> None:
    rule = RULES.by_code["repeat-ae-attendance"]
    naive = [{**timeline(("health.ae_attendance", 3, "city-health"))[0]}]
    naive[0]["occurred_at"] = naive[0]["occurred_at"].replace(tzinfo=None)
    with pytest.raises(InputError, match="occurred_at"):
        evaluate(rule, naive, NOW)
    with pytest.raises(InputError, match="now"):
        evaluate(rule, [], NOW.replace(tzinfo=None))
    with pytest.raises(InputError, match="partner_id: is missing"):
        evaluate(rule, [{k: v for k, v in naive[0].items() if k != "partner_id"}], NOW)


def test_the_book_finds_every_rule_that_holds_and_the_first_to_close() -> None:
    ae = timeline(*CASES["repeat-ae-attendance"][0])
    plan = timeline(*CASES["concern-during-open-plan"][0])
    matches = evaluate_book(RULES, ae + plan, NOW)
    assert sorted(m.rule_code for m in matches) == [
        "concern-during-open-plan",
        "repeat-ae-attendance",
    ]
    # the oldest A&E attendance leaves its 30-day window first (plan: 200 days into 365)
    assert next_close(matches) == ae[0]["occurred_at"] + timedelta(days=30)
    assert next_close([]) is None


def test_the_book_gives_what_each_rule_gives_alone() -> None:
    """The book reads the timeline once for all its rules: every case's timeline, every
    near miss and the old events together give the same matches, rule by rule, as each
    rule evaluated alone over the timeline."""
    specs = [spec for events, _, misses in CASES.values() for spec in events]
    specs += [spec for _, _, misses in CASES.values() for miss in misses.values() for spec in miss]
    entries = timeline(*specs, *OLD)
    alone = [m for rule in RULES if (m := evaluate(rule, entries, NOW)) is not None]
    assert evaluate_book(RULES, entries, NOW) == alone
    assert len(alone) > len(CASES) // 2  # most rules hold over all of them together


def test_a_window_holds_what_is_after_its_start_and_not_after_now() -> None:
    """repeat-ae-attendance (three A&E visits in 30 days): a visit exactly 30 days old has
    left the window, one exactly now is in it, and a later one does not count yet."""
    rule = RULES.by_code["repeat-ae-attendance"]
    visits = timeline(*(("health.ae_attendance", days, "city-health") for days in (1, 2)))
    edge, now, later = (
        timeline(("health.ae_attendance", days, "city-health"))[0] for days in (30, 0, -1)
    )
    assert evaluate(rule, [*visits, edge, later], NOW) is None
    match = evaluate(rule, [*visits, edge, now, later], NOW)
    assert match is not None and match.strength == 3
    assert now["event_id"] in match.event_ids and edge["event_id"] not in match.event_ids


# --- de-duplication and cooldown ----------------------------------------------------------


def ae_match(attendances: int) -> Any:
    specs = [("health.ae_attendance", 1 + n, "city-health") for n in range(attendances)]
    match = evaluate(RULES.by_code["repeat-ae-attendance"], timeline(*specs), NOW)
    assert match is not None
    return match


@pytest.mark.parametrize(
    ("open_days_ago", "open_strength", "attendances", "decision"),
    [
        (None, 0, 3, Decision.NEW),  # nothing open
        (3, 3, 3, Decision.SUPPRESSED),  # within the 14-day cooldown, as strong
        (3, 4, 3, Decision.SUPPRESSED),  # within it, weaker
        (3, 3, 4, Decision.ESCALATED),  # within it, stronger
        (13.9, 3, 3, Decision.SUPPRESSED),  # just before the cooldown ends
        (14, 3, 3, Decision.NEW),  # cooldown over
        (20, 3, 5, Decision.ESCALATED),  # stronger after the cooldown: still an escalation
    ],
)
def test_cooldown_and_escalation(
    open_days_ago: float | None, open_strength: int, attendances: int, decision: Decision
) -> None:
    rule = RULES.by_code["repeat-ae-attendance"]
    assert rule.cooldown_days == 14
    open_alert = (
        None
        if open_days_ago is None
        else OpenAlert(created_at=NOW - timedelta(days=open_days_ago), strength=open_strength)
    )
    assert decide(rule, open_alert, ae_match(attendances), NOW) is decision


# --- loading rule files -------------------------------------------------------------------

RULE = """\
code: test-rule
title: Test rule
severity: HIGH
purpose: early-help
recipients: involved
window_days: 30
cooldown_days: 7
condition:
  count:
    event_types: ["housing.*"]
    at_least: 2
"""
SEQUENCE = """\
condition:
  sequence:
    first: [welfare.sanction]
    then: [community.food_bank]
    within_days: 60
"""


def write_rule(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_shipped_rules_load_and_tell_known_partners() -> None:
    book = load_rules(PROJECT_ROOT / "deploy/local/alerts", PARTNERS)
    assert isinstance(book, RuleBook) and len(book) == len(RULES)
    kinds = {rule.recipients.kind for rule in book}
    assert kinds == {"involved", "lead", "partner"}
    named = book.by_code["sanction-then-food-bank"].recipients
    assert (named.partner, named.team) == ("council-housing", "financial-inclusion")


def test_a_good_rule_file_loads(tmp_path: Path) -> None:
    book = load_rules(write_rule(tmp_path / "r", "r.yaml", RULE))
    rule = book.by_code["test-rule"]
    assert rule.condition.count is not None and rule.condition.count.at_least == 2
    assert load_rules(tmp_path / "missing").by_code == {}


@pytest.mark.parametrize(
    ("change", "line", "message", "secret"),
    [
        (lambda t: t + "    colour: red\n", 12, "condition.count.colour: Extra inputs", "red"),
        (lambda t: t.replace("HIGH", "SEVERE"), 3, "severity: Input should be 'LOW'", "SEVERE"),
        (
            lambda t: t.replace('"housing.*"', '"pets.*"'),
            10,
            "condition.count.event_types.0: Value error, matches no known event type",
            "pets",
        ),
        (
            lambda t: t.replace('"housing.*"', "housing.arrear"),
            10,
            "condition.count.event_types.0: Value error, matches no known event type",
            "arrear",
        ),
        (
            lambda t: t + "  distinct_domains: {at_least: 3}\n",
            8,
            "condition: Value error, give exactly one of count, distinct_partners",
            None,
        ),
        (lambda t: t.replace("purpose: early-help\n", ""), 1, "purpose: Field required", None),
        (
            lambda t: t.replace("recipients: involved", "recipients: Housing Team"),
            5,
            "recipients.partner: String should match pattern",
            "Housing Team",
        ),
        (lambda t: t.replace("window_days: 30", "window_days: 0"), 6, "window_days", None),
        (
            lambda t: t[: t.index("condition:")] + SEQUENCE,
            8,
            "condition: Value error, a sequence's within_days is longer than window_days",
            None,
        ),
        (
            lambda t: t.replace("title: Test rule", "title: [Test rule"),
            3,
            "not valid YAML: expected ',' or ']'",
            "Test rule",
        ),
    ],
)
def test_bad_rule_files_name_file_line_key_and_reason(
    tmp_path: Path, change: Any, line: int, message: str, secret: str | None
) -> None:
    folder = write_rule(tmp_path / "r", "bad.yaml", change(RULE))
    with pytest.raises(RuleError) as caught:
        load_rules(folder)
    assert str(caught.value).startswith(f"{folder / 'bad.yaml'}:{line}: {message}")
    assert caught.value.line == line
    assert isinstance(caught.value, ConfigError)
    if secret is not None:
        assert secret not in str(caught.value)  # the key is named, its value never shown


def test_a_rule_code_defined_twice_is_refused(tmp_path: Path) -> None:
    folder = write_rule(tmp_path / "r", "a.yaml", RULE)
    write_rule(folder, "b.yaml", "# the same rule again\n" + RULE)
    with pytest.raises(RuleError) as caught:
        load_rules(folder)
    assert (
        str(caught.value) == f"{folder / 'b.yaml'}:2: code: rule code is already defined in a.yaml"
    )


def test_a_named_recipient_must_be_a_partner(tmp_path: Path) -> None:
    text = RULE.replace("recipients: involved", "recipients: city-zoo/keepers")
    folder = write_rule(tmp_path / "r", "r.yaml", text)
    assert load_rules(folder).by_code["test-rule"].recipients.partner == "city-zoo"
    with pytest.raises(RuleError) as caught:
        load_rules(folder, PARTNERS)
    assert str(caught.value) == (
        f"{folder / 'r.yaml'}:5: recipients: not a partner of the partners file"
    )


def test_known_event_types_are_those_the_payload_models_spell() -> None:
    spelt = {
        model.model_construct(kind=kind).event_type
        for model in PAYLOAD_MODELS
        for kind in model.model_fields["kind"].annotation  # type: ignore[union-attr]
    }
    assert spelt == KNOWN_EVENT_TYPES
    assert {"housing.arrears", "social_care.plan_opened", "health.ae_attendance"} <= spelt
