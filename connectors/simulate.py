"""A synthetic place: people, partners and consents, publishing through the real SDK.

Deterministic for a seed, so the demo, tests and benchmarks see the same place. Every
identifier it makes is synthetic (valid NHS numbers from a random generator), never real.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.pseudonymise import token
from connectors.publisher import ConsentDraft, EventDraft, Publisher
from hub.config import Settings
from hub.identity import person_id_for
from hub.models import (
    AgeBand,
    ArrearsBand,
    AttendanceBand,
    BasisKind,
    EducationEvent,
    EducationKind,
    HealthEvent,
    HealthKind,
    HousingEvent,
    HousingKind,
    LawfulBasis,
    Payload,
)

__all__ = ["PARTNERS", "Place", "SimPerson", "synthetic_nhs_number"]

PURPOSE = "early-help"
# partner id -> source system; the order is the order partners join the place.
PARTNERS = {
    "council-housing": "northgate-housing",
    "northfield-school": "sims-education",
    "city-health": "emis-health",
}
_BATCH = 500  # events sent before waiting for acknowledgements, when not paced
WARDS = [f"E0500{n:04d}" for n in range(1, 13)]


def synthetic_nhs_number(rng: random.Random) -> str:
    """A random 10-digit number with a valid mod-11 check digit (not a real person's)."""
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return "".join(map(str, digits)) + str(check)


@dataclass
class SimPerson:
    """One synthetic resident: raw identifiers (kept on the partner side only)."""

    index: int
    nhs_number: str
    council_ref: str
    ward: str
    age_band: AgeBand
    consented: bool
    partners: list[str] = field(default_factory=list)

    @property
    def consent_id(self) -> str:
        return f"c-{self.index:06d}"


class Place:
    """The synthetic place for one seed."""

    def __init__(self, seed: int = 7, people: int = 100, consent_rate: float = 0.9) -> None:
        self.rng = random.Random(seed)
        self.people = [self._person(i, consent_rate) for i in range(people)]

    def _person(self, index: int, consent_rate: float) -> SimPerson:
        rng = self.rng
        partners = ["council-housing", *[p for p in list(PARTNERS)[1:] if rng.random() < 0.7]]
        return SimPerson(
            index=index,
            nhs_number=synthetic_nhs_number(rng),
            council_ref=f"HSG-{index:07d}",
            ward=rng.choice(WARDS),
            age_band=rng.choice([AgeBand.AGE_11_15, AgeBand.AGE_25_34, AgeBand.AGE_35_49]),
            consented=index == 0 or rng.random() < consent_rate,
            partners=partners,
        )

    @staticmethod
    def person_id(person: SimPerson, place_key: bytes) -> str:
        """The hub's id for ``person``: minted from their NHS number's token."""
        return person_id_for(token("nhs", person.nhs_number, place_key))

    def consent(self, person: SimPerson) -> ConsentDraft:
        """The consent council housing records for ``person``."""
        return ConsentDraft(
            consent_id=person.consent_id,
            identifiers={"nhs": person.nhs_number},
            purposes=[PURPOSE],
            sharing_partners=list(PARTNERS),
        )

    def events(self, count: int, start: datetime | None = None) -> Iterator[tuple[str, EventDraft]]:
        """``count`` events as (partner id, draft), spread over the people."""
        moment = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        for _ in range(count):
            person = self.rng.choice(self.people)
            partner = self.rng.choice(person.partners)
            moment += timedelta(minutes=self.rng.randrange(1, 90))
            yield partner, self._draft(person, partner, moment)

    def _draft(self, person: SimPerson, partner: str, moment: datetime) -> EventDraft:
        identifiers = {"nhs": person.nhs_number}
        if partner == "council-housing":
            identifiers["council"] = person.council_ref
        return EventDraft(
            source_ref=f"{partner[:3].upper()}-{person.index:06d}",
            identifiers=identifiers,
            basis=LawfulBasis(
                kind=BasisKind.CONSENT, consent_id=person.consent_id, purpose=PURPOSE
            ),
            payload=self._payload(partner),
            occurred_at=moment,
            area_code=person.ward,
            age_band=person.age_band,
        )

    def _payload(self, partner: str) -> Payload:
        rng = self.rng
        if partner == "council-housing":
            return HousingEvent(
                kind=rng.choice(list(HousingKind)), arrears_band=rng.choice(list(ArrearsBand))
            )
        if partner == "northfield-school":
            return EducationEvent(
                kind=rng.choice(list(EducationKind)),
                attendance_band=rng.choice(list(AttendanceBand)),
            )
        return HealthEvent(kind=rng.choice(list(HealthKind)))

    def publish(
        self,
        settings: Settings,
        events: int,
        rate_per_s: float | None = None,
        consents: bool = True,
    ) -> dict[str, int]:
        """Publish every consent (if asked), then ``events`` events, paced to ``rate_per_s``."""
        publishers = {p: Publisher(p, system, settings) for p, system in PARTNERS.items()}
        try:
            if consents:
                publishers["council-housing"].publish_consents(
                    [self.consent(person) for person in self.people if person.consented]
                )
            counts = dict.fromkeys(PARTNERS, 0)
            started = time.monotonic()
            batch: dict[str, list[EventDraft]] = {partner: [] for partner in PARTNERS}
            for n, (partner, draft) in enumerate(self.events(events), start=1):
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
