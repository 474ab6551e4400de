"""The flows' pure logic with plain values: transitions within N days and in order, one
partner's own events ignored, the window of the later event, referrals by receiving
partner, one service or several, days to a first contact and the median's rule; then the
same through both patterns stages: erasure takes a person's flows out, and a median is
published only over at least five referrals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.disclosure import RULE
from hub.models import PatternCell, ReferralEvent, ReferralKind, ReferralReason
from hub.stages.pattern_flows import MEDIAN_RULE, day_values, flow_cells, medians
from hub.stages.pattern_windows import Seen, person_cells, windows_of
from hub.stages.patterns import median_days, publishable
from hub.stages.view import entry_for
from tests.unit import factories
from tests.unit.test_patterns_stages import (
    WEEK,
    counts_step,
    delta_record,
    deltas,
    entry,
    people_step,
    published,
)

WED = datetime(2026, 11, 18, 12, tzinfo=UTC)  # a Wednesday: its week is Mon 16 to Mon 23
WARD = "E05000001"
HOUSING, FOOD, GP = "council-housing", "city-food-bank", "city-gp-federation"
WITHIN = timedelta(days=30)


def at(partner: str, when: datetime, event_type: str = "housing.arrears") -> Seen:
    return Seen(event_type, when, WARD, partner)


def referral(kind: str, by: str, to: str, when: datetime) -> Seen:
    return Seen(f"referral.{kind}", when, WARD, by, to)


def flows(entries: list[Seen], when: datetime = WED) -> set[tuple[str, str]]:
    week = windows_of(when)[0]
    inside = [e for e in entries if week.start <= e.occurred_at < week.end]
    return flow_cells(entries, inside, WITHIN)


def transitions(entries: list[Seen], when: datetime = WED) -> set[str]:
    return {c for m, c in flows(entries, when) if m == "transition"}


def test_an_event_at_another_partner_within_n_days_before_is_a_transition() -> None:
    food = at(FOOD, WED, "community.food_bank")
    assert transitions([at(HOUSING, WED - timedelta(days=29)), food]) == {f"{HOUSING}>{FOOD}"}
    assert transitions([at(HOUSING, WED - timedelta(days=31)), food]) == set()  # too long ago
    # Every earlier partner within the days counts; the order is the events' time.
    earlier = [at(HOUSING, WED - timedelta(days=3)), at(GP, WED - timedelta(days=1)), food]
    assert transitions(earlier) == {f"{HOUSING}>{FOOD}", f"{GP}>{FOOD}", f"{HOUSING}>{GP}"}


def test_the_order_counts_and_one_partners_own_events_are_no_transition() -> None:
    later = [at(FOOD, WED - timedelta(days=2), "community.food_bank"), at(HOUSING, WED)]
    assert transitions(later) == {f"{FOOD}>{HOUSING}"}
    same = [at(HOUSING, WED - timedelta(days=2)), at(HOUSING, WED)]
    assert transitions(same) == set()
    assert transitions([at(HOUSING, WED), at(FOOD, WED, "community.food_bank")]) == set()


def test_a_transition_is_counted_in_the_window_of_its_later_event() -> None:
    last_week = WED - timedelta(days=7)
    entries = [at(HOUSING, last_week), at(FOOD, WED, "community.food_bank")]
    assert transitions(entries, WED) == {f"{HOUSING}>{FOOD}"}
    assert transitions(entries, last_week) == set()
    week = windows_of(WED)[0]
    cells = person_cells(entries, week, WITHIN)
    assert {f"transition|{WARD}|{HOUSING}>{FOOD}", f"transition||{HOUSING}>{FOOD}"} <= cells
    shorter = person_cells(entries, week, timedelta(days=5))  # Settings.flows_within_days
    assert not any(c.startswith("transition") for c in shorter)


def test_referrals_by_receiving_partner_and_one_service_or_several() -> None:
    entries = [referral("made", HOUSING, FOOD, WED), referral("accepted", FOOD, FOOD, WED)]
    found = flows(entries)
    assert {("referral", f"{FOOD}.made"), ("referral", f"{FOOD}.accepted")} <= found
    assert ("services", "several") in found
    assert ("services", "one") in flows([at(HOUSING, WED), at(HOUSING, WED)])


def test_the_view_carries_a_referrals_receiving_partner_and_nothing_else_does() -> None:
    payload = ReferralEvent(
        kind=ReferralKind.MADE,
        from_partner=HOUSING,
        to_partner=FOOD,
        reason_code=ReferralReason.FOOD,
    )
    assert entry_for(factories.event(payload=payload), "s1").to_partner == FOOD
    assert entry_for(factories.event(), "s1").to_partner is None


def test_days_to_first_contact_for_each_pairs_first_referral_in_the_window() -> None:
    made = referral("made", HOUSING, FOOD, WED - timedelta(days=2))
    again = referral("made", HOUSING, FOOD, WED)  # the pair's second: not counted again
    contact = at(FOOD, WED + timedelta(days=3, hours=1), "community.food_bank")
    week = windows_of(WED)[0]
    inside = [made, again, contact]
    assert day_values(inside, inside) == {f"{HOUSING}>{FOOD}=5"}
    assert day_values([made], [made]) == set()  # no contact yet: no value
    before = at(FOOD, WED - timedelta(days=3), "community.food_bank")  # before the referral
    assert day_values([before, made], [made]) == set()
    # The receiver accepting the referral is not contact with the person: the simulated
    # place's medians were all 0-2 days, the answer's delay, not the wait for the visit.
    accepted = referral("accepted", FOOD, FOOD, WED - timedelta(days=1))
    answered = [made, accepted, contact]
    assert day_values(answered, answered) == {f"{HOUSING}>{FOOD}=5"}
    cells = person_cells(inside, week, WITHIN)
    assert f"referral_days||{HOUSING}>{FOOD}=5" in cells  # the whole place's only
    assert not any(c.startswith(f"referral_days|{WARD}|") for c in cells)


def test_a_median_is_of_whole_days_over_every_referral_behind_it() -> None:
    pair = f"{HOUSING}>{FOOD}"
    assert medians({f"{pair}=2": 2, f"{pair}=9": 3}) == {pair: (5, 9)}
    assert medians({f"{pair}=2": 2, f"{pair}=3": 2}) == {pair: (4, 3)}  # 2.5 rounds up


def test_a_median_is_published_only_over_at_least_five_referrals() -> None:
    pair = f"{HOUSING}>{FOOD}"
    few = {f"referral_days||{pair}=4": 4}
    shown = publishable(few)
    assert shown == {f"median_days||{pair}": None}  # suppressed, and no median
    assert median_days(few, shown) == {}
    enough = {f"referral_days||{pair}=4": 3, f"referral_days||{pair}=10": 3}
    shown = publishable(enough)
    assert shown == {f"median_days||{pair}": 5}  # 6 referrals, rounded like any count
    assert median_days(enough, shown) == {f"median_days||{pair}": 7}
    assert not any(c.startswith("referral_days") for c in shown)  # days are never published


# -- through both stages -----------------------------------------------------------------


def seen_at(n: int, partner: str, when: datetime, **more: Any) -> dict[str, Any]:
    return entry(n, "housing.arrears", when) | {"partner_id": partner} | more


def test_an_erased_persons_flows_leave_the_open_windows() -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    alice = [seen_at(1, HOUSING, now - timedelta(hours=1)), seen_at(2, FOOD, now)]
    first, table = people_step({"p-alice": alice}, {})
    sent = deltas(first)
    assert sent[windows_of(now)[0].id, f"transition||{HOUSING}>{FOOD}"] == 1
    assert sent[windows_of(now)[0].id, "services||several"] == 1
    erased, _ = people_step({"p-alice": []}, table, offset=1)
    assert deltas(erased) == {key: -n for key, n in sent.items()}


def test_the_window_stage_publishes_a_median_cell_with_its_rule_and_takes_it_back() -> None:
    pair = f"{HOUSING}>{FOOD}"
    days = {f"referral_days||{pair}=3": 4, f"referral_days||{pair}=8": 2}
    effects, table = counts_step([delta_record(WEEK, 0, [[0, days]])], {})
    cell = published(effects)[f"{WEEK}|median_days||{pair}"]
    assert isinstance(cell, PatternCell)
    assert (cell.count, cell.median_days, cell.suppressed) == (5, 3, False)
    assert cell.rule == f"{RULE} {MEDIAN_RULE}"
    assert table[WEEK.encode()]["medians"] == {f"median_days||{pair}": 3}
    # Four more referrals at 8 days: ten behind it, and the median moves too.
    effects, table = counts_step(
        [delta_record(WEEK, 0, [[1, {f"referral_days||{pair}=8": 4}]], offset=1)], table
    )
    cell = published(effects)[f"{WEEK}|median_days||{pair}"]
    assert cell is not None and (cell.count, cell.median_days) == (10, 8)
    # Six people erased: four referrals left, the cell suppressed with no median.
    gone = {f"referral_days||{pair}=8": -6}
    effects, table = counts_step([delta_record(WEEK, 0, [[2, gone]], offset=2)], table)
    cell = published(effects)[f"{WEEK}|median_days||{pair}"]
    assert cell is not None and (cell.count, cell.median_days) == (None, None)
    assert table[WEEK.encode()]["medians"] == {}


def test_a_timeline_entry_says_its_receiving_partner_to_the_patterns() -> None:
    raw = seen_at(1, HOUSING, WED, event_type="referral.made", to_partner=FOOD)
    assert Seen.of(json.loads(json.dumps(raw))) == Seen("referral.made", WED, WARD, HOUSING, FOOD)
