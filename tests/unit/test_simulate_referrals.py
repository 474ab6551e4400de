"""Explicit referrals in the simulated place (issue 13 item 2): a follow-up at another
partner is referred there first, the receiver accepts or declines it before the follow-up
(a declined one has none), completes some after it, and each step has a lawful basis the
demo deployment holds, so stewards' referral counts and medians have something to count."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from connectors import EventDraft, Publisher
from connectors.simulate import (
    PARTNERS,
    REFERRAL_REASONS,
    FollowUps,
    Household,
    Place,
    SimPerson,
    _Due,
)
from hub.agreements import load_agreements
from hub.config import PROJECT_ROOT, Settings
from hub.models import ReferralEvent, ReferralKind
from hub.stages.basis import lawful_basis_problem
from tests.unit.fakes import MemoryRegistry

MADE, ACCEPTED, DECLINED, COMPLETED = (
    ReferralKind.MADE,
    ReferralKind.ACCEPTED,
    ReferralKind.DECLINED,
    ReferralKind.COMPLETED,
)


class TracedFollowUps(FollowUps):
    """The place's schedule, noting what each event scheduled when it happened (with the
    partner that recorded it) and the item last taken off it."""

    def __init__(self, rng: random.Random, households: list[Household]) -> None:
        super().__init__(rng, households)
        self.scheduled: list[tuple[str, list[_Due]]] = []
        self.popped: _Due | None = None

    def referrals(
        self, person: SimPerson, partner: str, event: tuple[str, str], moment: datetime
    ) -> None:
        before = {id(due) for due in self.due}
        super().referrals(person, partner, event, moment)
        self.scheduled.append((partner, [d for d in self.due if id(d) not in before]))

    def pop(self, moment: datetime) -> _Due | None:
        self.popped = super().pop(moment)
        return self.popped


class TracedPlace(Place):
    """The simulated place with a traced schedule, noting which yielded event each
    scheduled item became."""

    def __init__(self, seed: int, people: int) -> None:
        super().__init__(seed=seed, people=people)
        self.traced = TracedFollowUps(self.rng, self.households)
        self.follow_ups = self.traced
        self.scheduled = self.traced.scheduled
        self.became: dict[int, int] = {}  # id of a scheduled item -> index of its event

    def run(self, count: int) -> list[tuple[str, EventDraft]]:
        """The place's first ``count`` events, noting the scheduled item each one was."""
        events = []
        for n, item in enumerate(self.events(count)):
            if self.traced.popped is not None:  # this event was the item popped before it
                self.became[id(self.traced.popped)] = n
            events.append(item)
        return events


def _step(due: _Due) -> ReferralEvent:
    assert isinstance(due.payload, ReferralEvent)
    return due.payload


def test_a_follow_up_at_another_partner_is_referred_there_first() -> None:
    place = TracedPlace(seed=5, people=150)
    events = place.run(3000)
    seen = {"same-partner": 0, ACCEPTED: 0, DECLINED: 0, COMPLETED: 0}
    steps_yielded = 0
    for referrer, dues in place.scheduled:
        follow_ups = [due for due in dues if due.payload is None]
        steps = [due for due in dues if due.payload is not None]
        assert len({due.partner for due in follow_ups}) == len(follow_ups)
        answered = set()
        for follow_up in follow_ups:
            receiver = follow_up.partner
            mine = [due for due in steps if _step(due).to_partner == receiver]
            if receiver == referrer:
                assert mine == [], "a partner's follow-up of its own event is no referral"
                seen["same-partner"] += 1
                continue
            answered.add(receiver)
            kinds = [_step(due).kind for due in mine]
            assert kinds in ([MADE, ACCEPTED], [MADE, ACCEPTED, COMPLETED])
            assert [due.partner for due in mine] == [referrer] + [receiver] * (len(mine) - 1)
            assert {_step(due).from_partner for due in mine} == {referrer}
            assert {_step(due).reason_code for due in mine} == {REFERRAL_REASONS[follow_up.event]}
            made, accepted, *completed = mine
            assert made.at <= accepted.at <= made.at + timedelta(days=3)
            assert accepted.at < follow_up.at and all(follow_up.at < c.at for c in completed)
            # Yielded in this order, as far as the place got (a prefix of it):
            indices = [place.became.get(id(due)) for due in [made, accepted, follow_up, *completed]]
            got = [n for n in indices if n is not None]
            assert indices[: len(got)] == got == sorted(got), "a step before the one it follows"
            seen[ACCEPTED] += 1
            seen[COMPLETED] += len(completed)
        for due in steps:
            if _step(due).to_partner not in answered:  # declined: no follow-up was scheduled
                declined = [d for d in steps if _step(d).to_partner == _step(due).to_partner]
                assert [_step(d).kind for d in declined] == [MADE, DECLINED]
                seen[DECLINED] += _step(due).kind is DECLINED
        for due in steps:
            if id(due) in place.became:
                steps_yielded += 1
                partner, draft = events[place.became[id(due)]]
                assert (partner, draft.payload) == (due.partner, due.payload)
    referrals_yielded = [d for _, d in events if isinstance(d.payload, ReferralEvent)]
    assert len(referrals_yielded) == steps_yielded, "a referral event the place did not make"
    assert all(n > 0 for n in seen.values()), seen


def test_referrals_are_the_same_for_a_seed_and_differ_for_another() -> None:
    def referrals(seed: int) -> list[tuple[str, dict[str, object]]]:
        events = Place(seed=seed, people=300).events(1500)
        return [(p, d.model_dump()) for p, d in events if isinstance(d.payload, ReferralEvent)]

    first = referrals(7)
    assert first and first == referrals(7) and first != referrals(8)


def test_each_referral_step_has_a_lawful_basis_the_demo_deployment_holds() -> None:
    """The police's referrals to children's services, and the latter's answers, go under
    the safeguarding agreement (which must cover referral.*); every other partner's under
    the person's consent, which names every partner of the place, the receiver included."""
    agreements = load_agreements(PROJECT_ROOT / "deploy/local/agreements")
    place = Place(seed=7, people=300)
    registry = MemoryRegistry()
    settings = Settings(allow_test_key=True)
    publishers = {
        p.id: Publisher(p.id, p.source_system, settings, registry) for p in PARTNERS.values()
    }
    bases: dict[str, set[str]] = {}
    for partner, draft in place.events(3000):
        if not isinstance(draft.payload, ReferralEvent):
            continue
        person = place.people[int(draft.source_ref[4:])]
        if not (PARTNERS[partner].agreement or person.consented):
            continue  # held in quarantine, as any event without a basis yet
        consent = publishers["council-housing"].to_consent(place.consent(person))
        assert draft.payload.to_partner in consent.sharing_partners
        assert draft.basis is not None
        event = publishers[partner].to_event(draft)
        assert lawful_basis_problem(event, consent, agreements, draft.occurred_at) is None
        bases.setdefault(draft.basis.agreement_id or "consent", set()).add(partner)
    assert bases["dsa-safeguarding-2026"] == {"city-police", "council-early-help"}
    assert {"council-housing", "city-health", "minds-matter", "city-jobcentre"} <= bases["consent"]
