"""A synthetic place: wards, households, people, partners, consents, needs and referrals.

Deterministic for a seed, so the demo, tests and benchmarks see the same place. Every
identifier it makes is synthetic (valid-format NHS numbers and UPNs from a seeded random
generator), never a real person's. Everything publishes through the real SDK.

The place is data, not code: ``PARTNERS`` says who shares which event kinds, ``NEEDS``
which event kinds a need makes likely (needs co-occur within a household, as hardship
does), and ``REFERRALS`` which event at one partner tends to lead to an event at another.
A new payload family is one more ``_PAYLOADS`` entry and a few rows in these tables.

The place has every kind of organisation the hub is for, so every shipped alert rule can
fire in the demo: housing, schools and the NHS share under each person's consent, as do
the job centre and the food bank; the police and children's services share under the
safeguarding agreement (public task: ``deploy/local/agreements``), as they would for
domestic abuse whether or not the person consented. Plans follow a referral and an
assessment, and a sanction is often followed by a food-bank visit, as in life.

A follow-up at another partner is an explicit referral, as stewards count them: the
referring partner records it made when it schedules the follow-up, the receiving partner
accepts it within three days (or declines it, and there is no follow-up), and completes
some after the follow-up, which stays the person's first contact with the service. Each
records its step under its own lawful basis, like its other events.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.pseudonymise import IdentifierError, normalise_nhs_number, token
from connectors.publisher import ConsentDraft, EventDraft, Publisher
from hub.config import Settings
from hub.models import (
    AgeBand,
    ArrearsBand,
    AttendanceBand,
    BasisKind,
    Benefit,
    CareService,
    ClaimChange,
    ClosureReason,
    CommunityEvent,
    CommunityKind,
    DashRisk,
    DebtBand,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    Payload,
    PlanType,
    PoliceEvent,
    PoliceKind,
    ReferralEvent,
    ReferralKind,
    ReferralReason,
    SanctionLevel,
    SocialCareEvent,
    SocialCareKind,
    WelfareEvent,
    WelfareKind,
)
from hub.stages.identity import person_id_for

__all__ = [
    "HOUSEHOLD_EVENTS",
    "NEEDS",
    "PARTNERS",
    "REFERRALS",
    "REFERRAL_REASONS",
    "FollowUps",
    "Household",
    "PartnerProfile",
    "Place",
    "SimPerson",
    "partner_for",
    "recent_start",
    "synthetic_nhs_number",
    "synthetic_upn",
]

PURPOSE = "early-help"
SAFEGUARDING_AGREEMENT = "dsa-safeguarding-2026"  # deploy/local/agreements
WARDS = [f"E0500{n:04d}" for n in range(1, 13)]
_BATCH = 500  # events sent before waiting for acknowledgements, when not paced
_ADULT_BANDS = [AgeBand.AGE_18_24, AgeBand.AGE_25_34, AgeBand.AGE_35_49, AgeBand.AGE_50_64]
_CHILD_BANDS = [AgeBand.AGE_5_10, AgeBand.AGE_11_15, AgeBand.AGE_16_17]
_DECLINED = 0.15  # referrals the receiving partner declines: no follow-up then
_COMPLETED = 0.6  # accepted referrals the receiving partner later records completed
_ANSWER_DAYS = 3  # a referral is accepted or declined within this many days


def recent_start(days_ago: int = 60) -> datetime:
    """09:00 UTC ``days_ago`` days before today: simulated timelines start there, so they
    stay well inside any retention period whenever the simulation runs."""
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


@dataclass(frozen=True)
class PartnerProfile:
    """One organisation of the place: who it serves and which event kinds it records."""

    id: str
    name: str
    sector: str
    source_system: str
    family: str
    kinds: tuple[str, ...]
    serves: Callable[[SimPerson], bool]
    agreement: str | None = None  # shares under this agreement; else the person's consent


def _tenant_of(landlord: str) -> Callable[[SimPerson], bool]:
    return lambda person: person.landlord == landlord


def _pupil_of(school: str) -> Callable[[SimPerson], bool]:
    return lambda person: person.school == school


def _everyone(person: SimPerson) -> bool:
    return True


def _adult(person: SimPerson) -> bool:
    return person.school is None


# The partners, in the order they join the place (at least six, several per family).
PARTNERS: dict[str, PartnerProfile] = {
    p.id: p
    for p in [
        PartnerProfile(
            "council-housing", "City Council Housing", "housing", "northgate-housing",
            "housing", ("ARREARS", "NOTICE_SERVED", "HOMELESSNESS_PRESENTATION"),
            _tenant_of("council-housing"),
        ),
        PartnerProfile(
            "riverside-homes", "Riverside Homes Housing Association", "housing",
            "orchard-housing", "housing", ("ARREARS", "NOTICE_SERVED"),
            _tenant_of("riverside-homes"),
        ),
        PartnerProfile(
            "northfield-school", "Northfield Academy", "education", "sims-education",
            "education", ("ATTENDANCE", "SUSPENSION", "EXCLUSION", "CHILD_MISSING_EDUCATION"),
            _pupil_of("northfield-school"),
        ),
        PartnerProfile(
            "southside-primary", "Southside Primary School", "education", "arbor-education",
            "education", ("ATTENDANCE", "SUSPENSION", "CHILD_MISSING_EDUCATION"),
            _pupil_of("southside-primary"),
        ),
        PartnerProfile(
            "city-health", "City Hospitals NHS Trust", "health", "emis-health", "health",
            ("AE_ATTENDANCE",), _everyone,
        ),
        PartnerProfile(
            "minds-matter", "Minds Matter Community Mental Health", "health", "rio-health",
            "health", ("MENTAL_HEALTH_REFERRAL",), _everyone,
        ),
        PartnerProfile(
            "city-gp-federation", "City GP Federation", "health", "systmone-health", "health",
            ("GP_REGISTRATION",), _adult,
        ),
        PartnerProfile(
            "city-police", "City Police", "police", "niche-police", "police",
            ("WELFARE_CONCERN", "DOMESTIC_INCIDENT"), _everyone, SAFEGUARDING_AGREEMENT,
        ),
        PartnerProfile(
            "council-early-help", "City Council Children's Services and Early Help",
            "social-care", "mosaic-social-care", "social_care",
            ("REFERRAL", "ASSESSMENT", "PLAN_OPENED", "PLAN_CLOSED"), _everyone,
            SAFEGUARDING_AGREEMENT,
        ),
        PartnerProfile(
            "city-jobcentre", "City Jobcentre Plus", "welfare", "uc-welfare", "welfare",
            ("SANCTION", "CLAIM_CHANGE"), _adult,
        ),
        PartnerProfile(
            "city-food-bank", "City Food Bank and Debt Advice", "charity", "charitylog",
            "community", ("FOOD_BANK", "DEBT_ADVICE"), _adult,
        ),
    ]
}  # fmt: skip

# need -> (family, kind) -> weight: what a person with that need tends to show. A plan
# is never drawn at random: it follows a referral and an assessment (``REFERRALS``).
NEEDS: dict[str, dict[tuple[str, str], float]] = {
    "financial-hardship": {
        ("housing", "ARREARS"): 5.0,
        ("housing", "NOTICE_SERVED"): 1.5,
        ("education", "ATTENDANCE"): 1.0,
        ("welfare", "SANCTION"): 1.5,
        ("welfare", "CLAIM_CHANGE"): 1.5,
        ("community", "FOOD_BANK"): 1.0,
        ("community", "DEBT_ADVICE"): 1.0,
    },
    "housing-instability": {
        ("housing", "NOTICE_SERVED"): 2.0,
        ("housing", "HOMELESSNESS_PRESENTATION"): 2.0,
        ("education", "CHILD_MISSING_EDUCATION"): 1.0,
        ("health", "GP_REGISTRATION"): 1.0,
    },
    "school-disengagement": {
        ("education", "ATTENDANCE"): 4.0,
        ("education", "SUSPENSION"): 1.5,
        ("education", "EXCLUSION"): 0.5,
        ("social_care", "REFERRAL"): 0.3,
    },
    "poor-mental-health": {
        ("health", "MENTAL_HEALTH_REFERRAL"): 2.0,
        ("health", "AE_ATTENDANCE"): 2.0,
        ("education", "ATTENDANCE"): 1.0,
        ("police", "WELFARE_CONCERN"): 0.5,
    },
    "domestic-abuse": {
        ("police", "DOMESTIC_INCIDENT"): 2.5,
        ("police", "WELFARE_CONCERN"): 1.5,
        ("social_care", "REFERRAL"): 0.5,
        ("health", "AE_ATTENDANCE"): 1.0,
        ("education", "ATTENDANCE"): 0.5,
    },
}
# A baseline every resident has: ordinary contact with services.
_BASELINE: dict[tuple[str, str], float] = {
    ("health", "AE_ATTENDANCE"): 0.5,
    ("health", "GP_REGISTRATION"): 0.2,
    ("education", "ATTENDANCE"): 0.5,
    ("welfare", "CLAIM_CHANGE"): 0.2,
}
# Events a landlord records for the whole household, children included.
HOUSEHOLD_EVENTS = frozenset(
    {("housing", "NOTICE_SERVED"), ("housing", "HOMELESSNESS_PRESENTATION")}
)
# (family, kind) that starts a flow -> (family, kind) it leads to, and how often.
REFERRALS: dict[tuple[str, str], list[tuple[tuple[str, str], float]]] = {
    ("housing", "HOMELESSNESS_PRESENTATION"): [
        (("health", "GP_REGISTRATION"), 0.5),
        (("health", "MENTAL_HEALTH_REFERRAL"), 0.3),
    ],
    ("education", "EXCLUSION"): [(("health", "MENTAL_HEALTH_REFERRAL"), 0.4)],
    ("health", "AE_ATTENDANCE"): [
        (("health", "MENTAL_HEALTH_REFERRAL"), 0.15),
        (("health", "AE_ATTENDANCE"), 0.25),  # a return visit: frequent attenders
    ],
    ("housing", "NOTICE_SERVED"): [(("housing", "HOMELESSNESS_PRESENTATION"), 0.25)],
    ("housing", "ARREARS"): [(("community", "DEBT_ADVICE"), 0.1)],
    ("welfare", "SANCTION"): [(("community", "FOOD_BANK"), 0.5)],
    # The police notify children's services of a domestic incident; a referral is assessed,
    # an assessment may open a plan, and some plans close within weeks.
    ("police", "DOMESTIC_INCIDENT"): [(("social_care", "REFERRAL"), 0.6)],
    ("social_care", "REFERRAL"): [(("social_care", "ASSESSMENT"), 0.8)],
    ("social_care", "ASSESSMENT"): [(("social_care", "PLAN_OPENED"), 0.6)],
    ("social_care", "PLAN_OPENED"): [(("social_care", "PLAN_CLOSED"), 0.3)],
}
# The reason a referral to another partner gives, by the follow-up it leads to.
REFERRAL_REASONS: dict[tuple[str, str], ReferralReason] = {
    ("health", "GP_REGISTRATION"): ReferralReason.PHYSICAL_HEALTH,
    ("health", "MENTAL_HEALTH_REFERRAL"): ReferralReason.MENTAL_HEALTH,
    ("community", "FOOD_BANK"): ReferralReason.FOOD,
    ("community", "DEBT_ADVICE"): ReferralReason.FINANCIAL,
    ("social_care", "REFERRAL"): ReferralReason.DOMESTIC_ABUSE,  # the police's, after an incident
}


def _housing(rng: random.Random, kind: str) -> Payload:
    band = rng.choice(list(ArrearsBand)) if kind == "ARREARS" else None
    return HousingEvent(kind=HousingKind(kind), arrears_band=band)


def _education(rng: random.Random, kind: str) -> Payload:
    band = rng.choice(list(AttendanceBand)[1:]) if kind == "ATTENDANCE" else None
    return EducationEvent(kind=EducationKind(kind), attendance_band=band)


def _health(rng: random.Random, kind: str) -> Payload:
    return HealthEvent(kind=HealthKind(kind))


def _police(rng: random.Random, kind: str) -> Payload:
    if kind != "DOMESTIC_INCIDENT":
        return PoliceEvent(kind=PoliceKind(kind))
    risk = rng.choices(list(DashRisk), [6, 3, 1])[0]
    return PoliceEvent(kind=PoliceKind(kind), dash_risk=risk, children_present=rng.random() < 0.5)


def _social_care(rng: random.Random, kind: str) -> Payload:
    service = rng.choice([CareService.EARLY_HELP, CareService.CHILDREN_SOCIAL_CARE])
    plan = rng.choice([PlanType.EARLY_HELP_PLAN, PlanType.CHILD_IN_NEED])
    return SocialCareEvent(
        kind=SocialCareKind(kind),
        service=service,
        plan_type=plan if kind == "PLAN_OPENED" else None,
        closure_reason=rng.choice(list(ClosureReason)) if kind == "PLAN_CLOSED" else None,
    )


def _welfare(rng: random.Random, kind: str) -> Payload:
    benefit = rng.choices([Benefit.UNIVERSAL_CREDIT, Benefit.JSA, Benefit.ESA], [8, 1, 1])[0]
    sanction = kind == "SANCTION"
    return WelfareEvent(
        kind=WelfareKind(kind),
        benefit=benefit,
        sanction_level=rng.choice(list(SanctionLevel)) if sanction else None,
        claim_change=None if sanction else rng.choice(list(ClaimChange)),
    )


def _community(rng: random.Random, kind: str) -> Payload:
    if kind != "DEBT_ADVICE":
        return CommunityEvent(kind=CommunityKind(kind))
    band = rng.choice(list(DebtBand))
    return CommunityEvent(
        kind=CommunityKind(kind), debt_band=band, priority_debt=rng.random() < 0.4
    )


_PAYLOADS: dict[str, Callable[[random.Random, str], Payload]] = {
    "housing": _housing,
    "education": _education,
    "health": _health,
    "police": _police,
    "social_care": _social_care,
    "welfare": _welfare,
    "community": _community,
}


def synthetic_nhs_number(rng: random.Random) -> str:
    """A random 10-digit number that the SDK accepts: a valid mod-11 check digit, outside
    the test range and not a repeated digit, which the SDK refuses as dummies."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        candidate = "".join(map(str, digits)) + str(0 if check == 11 else check)
        if check == 10:
            continue
        try:
            return normalise_nhs_number(candidate)
        except IdentifierError:
            continue  # a dummy or test-range number


def synthetic_upn(rng: random.Random) -> str:
    """A random school UPN with a valid check letter (DfE rule; not a real pupil's)."""
    letters = "ABCDEFGHJKLMNPQRTUVWXYZ"
    body = "".join(str(rng.randrange(10)) for _ in range(12))
    weighted = sum(int(ch) * weight for ch, weight in zip(body, range(2, 14), strict=True))
    return letters[weighted % 23] + body


@dataclass
class SimPerson:
    """One synthetic resident: raw identifiers (kept on the partner side only)."""

    index: int
    household: int
    nhs_number: str
    ward: str
    age_band: AgeBand
    consented: bool
    landlord: str | None = None
    council_ref: str | None = None
    school: str | None = None
    upn: str | None = None
    needs: list[str] = field(default_factory=list)

    @property
    def consent_id(self) -> str:
        return f"c-{self.index:06d}"

    def partners(self) -> list[str]:
        """The partners that serve this person."""
        return [pid for pid, profile in PARTNERS.items() if profile.serves(self)]


@dataclass
class Household:
    """People at one address (never the address itself): a ward, a landlord, shared needs."""

    index: int
    ward: str
    landlord: str | None
    needs: list[str]
    members: list[SimPerson] = field(default_factory=list)


@dataclass(frozen=True)
class _Due:
    """An event the place has scheduled: a follow-up, a child's copy of a household's
    record, or a referral's step (whose payload is settled when the referral is made)."""

    at: datetime
    person: SimPerson
    event: tuple[str, str]
    partner: str
    payload: Payload | None = None
    leads_on: bool = True  # it may schedule follow-ups of its own (copies and steps do not)


def partner_for(person: SimPerson, family: str, kind: str) -> str | None:
    """The place's partner that records ``(family, kind)`` for ``person``, if any."""
    for pid, profile in PARTNERS.items():
        if profile.family == family and kind in profile.kinds and profile.serves(person):
            return pid
    return None


class FollowUps:
    """What the place has scheduled, in time order: follow-ups an event leads to (one at
    another partner referred there first), a referral's steps, and a household record's
    copies for its children. It draws from the place's own random generator, so a seed
    still gives one place."""

    def __init__(self, rng: random.Random, households: list[Household]) -> None:
        self.rng = rng
        self.households = households
        self.due: list[_Due] = []  # by ``at``

    def referrals(
        self, person: SimPerson, partner: str, event: tuple[str, str], moment: datetime
    ) -> None:
        """The follow-ups ``event`` at ``partner`` leads to; one at another partner is
        referred there first, and a declined referral has none."""
        for follow_up, chance in REFERRALS.get(event, []):
            if self.rng.random() < chance:
                later = moment + timedelta(days=self.rng.randrange(1, 21))
                receiver = partner_for(person, *follow_up)
                if receiver is None:
                    continue  # no partner of the place offers it to this person
                referred = (partner, receiver, follow_up)
                if receiver != partner and not self._refer(person, referred, moment, later):
                    continue
                self.due.append(_Due(later, person, follow_up, receiver))
        self.due.sort(key=lambda due: due.at)

    def _refer(
        self,
        person: SimPerson,
        referred: tuple[str, str, tuple[str, str]],
        moment: datetime,
        contact: datetime,
    ) -> bool:
        """Schedule the steps of a referral (referrer, receiver, the follow-up it asks
        for): made now by the referrer, accepted or declined by the receiver before the
        ``contact`` (the follow-up), completed by it for some after that. False when it is
        declined."""
        referrer, receiver, follow_up = referred
        reason = REFERRAL_REASONS.get(follow_up, ReferralReason.OTHER)

        def step(kind: ReferralKind, at: datetime, by: str) -> None:
            payload = ReferralEvent(
                kind=kind,
                from_partner=referrer,
                to_partner=receiver,
                reason_code=reason,
            )
            self.due.append(_Due(at, person, ("referral", kind.value), by, payload, leads_on=False))

        step(ReferralKind.MADE, moment, referrer)
        answer_s = min(timedelta(days=_ANSWER_DAYS), contact - moment).total_seconds()
        answered = moment + timedelta(seconds=self.rng.randrange(60, int(answer_s)))
        declined = self.rng.random() < _DECLINED
        step(ReferralKind.DECLINED if declined else ReferralKind.ACCEPTED, answered, receiver)
        if not declined and self.rng.random() < _COMPLETED:
            step(
                ReferralKind.COMPLETED,
                contact + timedelta(days=self.rng.randrange(1, 29)),
                receiver,
            )
        return not declined

    def dependants(
        self, person: SimPerson, partner: str, event: tuple[str, str], moment: datetime
    ) -> None:
        """A notice or a homelessness application covers the household: the landlord
        records it for each child living there too (a child's school can then be told)."""
        if event not in HOUSEHOLD_EVENTS or person.school is not None:
            return
        for member in self.households[person.household].members:
            if member.school is not None:
                at = moment + timedelta(minutes=1)
                self.due.append(_Due(at, member, event, partner, leads_on=False))
        self.due.sort(key=lambda due: due.at)

    def pop(self, moment: datetime) -> _Due | None:
        """The earliest item due by ``moment``, taken off the schedule, or None."""
        if self.due and self.due[0].at <= moment:
            return self.due.pop(0)
        return None


class Place:
    """The synthetic place for one seed: households of people with co-occurring needs."""

    def __init__(self, seed: int = 7, people: int = 100, consent_rate: float = 0.9) -> None:
        self.rng = random.Random(seed)
        self.households: list[Household] = []
        self.people: list[SimPerson] = []
        while len(self.people) < people:
            self._household(people - len(self.people), consent_rate)
        self.follow_ups = FollowUps(self.rng, self.households)

    def _household(self, room: int, consent_rate: float) -> None:
        rng = self.rng
        stress = rng.random()  # one household-level factor makes needs co-occur
        needs = [need for need in NEEDS if rng.random() < stress * 0.6]
        landlord = rng.choices(["council-housing", "riverside-homes", None], [5, 3, 2])[0]
        household = Household(len(self.households), rng.choice(WARDS), landlord, needs)
        adults = min(room, rng.choice([1, 1, 2, 2, 2]))
        children = min(room - adults, rng.choice([0, 0, 1, 2, 3]))
        for n in range(adults + children):
            household.members.append(self._person(household, n >= adults, consent_rate))
        self.households.append(household)

    def _person(self, household: Household, child: bool, consent_rate: float) -> SimPerson:
        rng = self.rng
        index = len(self.people)
        person = SimPerson(
            index=index,
            household=household.index,
            nhs_number=synthetic_nhs_number(rng),
            ward=household.ward,
            age_band=rng.choice(_CHILD_BANDS if child else _ADULT_BANDS),
            consented=index == 0 or rng.random() < consent_rate,
            needs=[need for need in household.needs if rng.random() < 0.8],
        )
        if child:
            person.school = rng.choice(["northfield-school", "southside-primary"])
            person.upn = synthetic_upn(rng)
        else:
            person.landlord = household.landlord
            if household.landlord is not None:
                person.council_ref = f"HSG-{index:07d}"
        self.people.append(person)
        return person

    @staticmethod
    def person_id(person: SimPerson, place_key: bytes) -> str:
        """The hub's id for ``person``: minted from their NHS number's token."""
        return person_id_for(token("nhs", person.nhs_number, place_key))

    def consent(self, person: SimPerson) -> ConsentDraft:
        """The consent recorded for ``person``, covering every partner of the place, with
        every identifier the partners hold for them (a consent admits only events whose
        identifiers its subject holds)."""
        identifiers = {"nhs": person.nhs_number}
        if person.council_ref:
            identifiers["council"] = person.council_ref
        if person.upn:
            identifiers["upn"] = person.upn
        return ConsentDraft(
            consent_id=person.consent_id,
            identifiers=identifiers,
            purposes=[PURPOSE],
            sharing_partners=list(PARTNERS),
        )

    def events(self, count: int, start: datetime | None = None) -> Iterator[tuple[str, EventDraft]]:
        """``count`` events as (partner id, draft): needs drive them, referrals follow them,
        and a household's notice or homelessness presentation names its children too."""
        moment = start or recent_start()
        weights = [1.0 + 2.0 * len(person.needs) for person in self.people]
        # Up to 4 hours apart, closer for a large load: spread over about nine tenths of
        # the time to now, so recent windows (30 days of A&E visits) hold events too and the
        # last event is still in the past (the hub refuses events ahead of its clock).
        # In whole days: the steps' bound decides how many random draws each step takes,
        # so a bound that moved with the clock made another place every second of the day.
        span_s = max(1, (datetime.now(UTC).date() - moment.date()).days) * 86_400
        step_max_s = max(2, min(4 * 3600, int(1.8 * span_s / max(count, 1))))
        produced = 0
        while produced < count:
            # Never ahead of now (the hub refuses those): a short span's random steps can
            # add up past it.
            moment = min(
                moment + timedelta(seconds=self.rng.randrange(1, step_max_s)), datetime.now(UTC)
            )
            due = self.follow_ups.pop(moment)
            if due is None:
                person = self.rng.choices(self.people, weights)[0]
                options = self._options(person)
                if not options:
                    continue
                family, kind = self.rng.choices(list(options), list(options.values()))[0]
                chosen = partner_for(person, family, kind)
                if chosen is None:
                    continue
                due = _Due(moment, person, (family, kind), chosen)
            if due.leads_on:
                self.follow_ups.referrals(due.person, due.partner, due.event, moment)
                self.follow_ups.dependants(due.person, due.partner, due.event, moment)
            produced += 1
            person, (family, kind) = due.person, due.event
            yield due.partner, self.draft(person, due.partner, family, kind, moment, due.payload)

    def _options(self, person: SimPerson) -> dict[tuple[str, str], float]:
        weights = dict(_BASELINE)
        for need in person.needs:
            for event, weight in NEEDS[need].items():
                weights[event] = weights.get(event, 0.0) + weight
        return {e: w for e, w in weights.items() if partner_for(person, *e) is not None}

    def draft(
        self,
        person: SimPerson,
        partner: str,
        family: str,
        kind: str,
        moment: datetime,
        payload: Payload | None = None,
    ) -> EventDraft:
        """The event ``partner`` records about ``person``, with the identifiers it holds,
        under the partner's agreement if it has one, else the person's consent; its payload
        drawn for ``kind`` unless given (a referral's, settled when it was made)."""
        identifiers = {"nhs": person.nhs_number}
        if family == "housing" and person.council_ref:
            identifiers["council"] = person.council_ref
        if family == "education" and person.upn:
            identifiers["upn"] = person.upn
        agreement = PARTNERS[partner].agreement
        basis = (
            LawfulBasis(kind=BasisKind.AGREEMENT, agreement_id=agreement, purpose=PURPOSE)
            if agreement
            else LawfulBasis(kind=BasisKind.CONSENT, consent_id=person.consent_id, purpose=PURPOSE)
        )
        return EventDraft(
            source_ref=f"{partner[:3].upper()}-{person.index:06d}",
            identifiers=identifiers,
            basis=basis,
            payload=payload or _PAYLOADS[family](self.rng, kind),
            occurred_at=moment,
            area_code=person.ward,
            age_band=person.age_band,
        )

    def publish(
        self,
        settings: Settings,
        events: int,
        rate_per_s: float | None = None,
        consents: bool = True,
        start: datetime | None = None,
    ) -> dict[str, int]:
        """Publish every consent (if asked), then ``events`` events from ``start`` (default
        ``recent_start()``) to now, paced to ``rate_per_s``."""
        publishers = {p.id: Publisher(p.id, p.source_system, settings) for p in PARTNERS.values()}
        try:
            if consents:
                publishers["council-housing"].publish_consents(
                    [self.consent(person) for person in self.people if person.consented]
                )
            counts = dict.fromkeys(PARTNERS, 0)
            started = time.monotonic()
            batch: dict[str, list[EventDraft]] = {partner: [] for partner in PARTNERS}
            for n, (partner, draft) in enumerate(self.events(events, start), start=1):
                batch[partner].append(draft)
                counts[partner] += 1
                if rate_per_s or n % _BATCH == 0 or n == events:
                    for name, drafts in batch.items():
                        if drafts:
                            publishers[name].publish_many(drafts)
                            drafts.clear()
                if rate_per_s:
                    delay = started + n / rate_per_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            return counts
        finally:
            for publisher in publishers.values():
                publisher.close()
