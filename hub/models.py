"""The typed edge: pydantic models that mirror the Avro schemas in ``schemas/``.

Models validate input and say precisely what is wrong; ``to_avro``/``from_avro`` turn them
into the dicts fastavro writes and reads. The ``.avsc`` files remain the contract.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from hub.topics import PARTNER_ID_PATTERN

__all__ = [
    "EARLIEST_EVENT_TIME",
    "MAX_CLOCK_SKEW",
    "MAX_TOKENS_PER_EVENT",
    "MODELS_BY_SCHEMA",
    "PAYLOAD_MODELS",
    "AgeBand",
    "Alert",
    "AlertFeedback",
    "AlertInboxStatus",
    "AlertSeverity",
    "AlertStatus",
    "ArrearsBand",
    "AttendanceBand",
    "AuditRecord",
    "AvroRecord",
    "BasisKind",
    "Benefit",
    "BreakGlassRead",
    "CareService",
    "ClaimChange",
    "ClosureReason",
    "CollectiveResponse",
    "CommunityEvent",
    "CommunityKind",
    "ConsentRecord",
    "ConsentStatus",
    "DashRisk",
    "DeadLetter",
    "DebtBand",
    "EducationEvent",
    "EducationKind",
    "FeedbackOutcome",
    "HealthEvent",
    "HealthKind",
    "HomelessnessDuty",
    "HousingEvent",
    "HousingKind",
    "IdentityLink",
    "LawfulBasis",
    "LinkMethod",
    "LinkStatus",
    "NoticeType",
    "PartnerEvent",
    "PatternCell",
    "Payload",
    "PlanType",
    "PoliceEvent",
    "PoliceKind",
    "ReasonCode",
    "ReferralEvent",
    "ReferralKind",
    "ReferralReason",
    "ResponseChange",
    "ResponseKind",
    "ResponseStatus",
    "SanctionLevel",
    "SocialCareEvent",
    "SocialCareKind",
    "Subject",
    "WelfareEvent",
    "WelfareKind",
    "payload_family",
    "utc_now",
]

# scheme, the place key's id (8 base32 characters; absent on tokens made before key ids),
# and base64url(HMAC-SHA256) unpadded. See connectors/pseudonymise.py.
TOKEN_PATTERN = r"^[a-z][a-z0-9]{1,15}:(?:[a-z2-7]{8}:)?[A-Za-z0-9_-]{43}$"
Token = Annotated[
    str, Field(pattern=TOKEN_PATTERN, description="scheme:key-id:base64url(HMAC-SHA256)")
]
# One event names one person: each of their identifiers once, a few schemes, a few refs.
MAX_TOKENS_PER_EVENT = 16
# Schemes a person has exactly one value of: two such tokens (under one key) are two people.
UNIQUE_SCHEMES = ("nhs", "upn")
# How far ahead of the reader's clock an event may be dated (clocks differ a little).
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_EVENT_TIME = datetime(1900, 1, 1, tzinfo=UTC)

_SEPARATORS = re.compile(r"[\s._:/-]")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_TEN_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")
_UPN_LIKE = re.compile(r"[A-Z][0-9]{11}[0-9A-Z]")
_NI_NUMBER_LIKE = re.compile(r"[A-Z]{2}[0-9]{6}[A-D]")
NOT_AN_IDENTIFIER = (
    "must not look like a national identifier (an NHS number, UPN or NI number): it travels "
    "in clear; use the record's own reference"
)


def _nhs_check_digit_ok(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    return (11 - total % 11) % 11 == int(digits[9])


def _not_a_national_identifier(value: str) -> str:
    """Refuse a clear reference that is (or embeds) a national identifier.

    Separators are ignored. Refused: ten digits alone (an NHS number's shape, valid or
    not), a run of ten digits inside a reference when it passes the NHS check digit, and
    the whole shape of a UPN or a National Insurance number.
    """
    compact = _SEPARATORS.sub("", value).upper()
    if (
        _TEN_DIGITS.fullmatch(compact)
        or any(_nhs_check_digit_ok(run) for run in _TEN_DIGIT_RUN.findall(compact))
        or _UPN_LIKE.fullmatch(compact)
        or _NI_NUMBER_LIKE.fullmatch(compact)
    ):
        raise ValueError(NOT_AN_IDENTIFIER)
    return value


def _plausible_time(moment: datetime) -> datetime:
    """Refuse times in the future (beyond clock skew) or absurdly far back: a future-dated
    event would sort above every real one, and a year-9999 one stays for ever."""
    if moment > datetime.now(UTC) + MAX_CLOCK_SKEW:
        minutes = int(MAX_CLOCK_SKEW.total_seconds() // 60)
        raise ValueError(f"is more than {minutes} minutes in the future")
    if moment < EARLIEST_EVENT_TIME:
        raise ValueError(f"is before {EARLIEST_EVENT_TIME.year}")
    return moment


PartnerId = Annotated[str, Field(pattern=PARTNER_ID_PATTERN.pattern)]
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")]
# An id a partner makes up that travels in clear (consent, link): never a national identifier.
PartnerCode = Annotated[Code, AfterValidator(_not_a_national_identifier)]
SourceRef = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$"),
    AfterValidator(_not_a_national_identifier),
]
EventTime = Annotated[AwareDatetime, AfterValidator(_plausible_time)]
EventType = Annotated[str, Field(max_length=64, pattern=r"^[a-z_]+\.[a-z_]+$")]
AreaCode = Annotated[str, Field(pattern=r"^[EWSN]\d{8}$", description="ONS ward or LSOA code")]


def _one_person(tokens: list[str]) -> list[str]:
    """Refuse repeated tokens and two tokens of a unique scheme under one key."""
    if len(set(tokens)) != len(tokens):
        raise ValueError("a token is repeated")
    kinds = [t.rsplit(":", 1)[0] for t in tokens if t.split(":", 1)[0] in UNIQUE_SCHEMES]
    if len(set(kinds)) != len(kinds):
        raise ValueError(
            f"at most one token of each of {', '.join(UNIQUE_SCHEMES)} (they are unique to a "
            "person; two are two people)"
        )
    return tokens


SubjectTokens = Annotated[
    list[Token],
    Field(min_length=1, max_length=MAX_TOKENS_PER_EVENT),
    AfterValidator(_one_person),
]


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond (what Avro timestamp-millis keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class AvroRecord(BaseModel):
    """Base of the models that mirror an Avro schema (named by ``avro_schema``)."""

    avro_schema: ClassVar[str] = ""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_avro(self) -> dict[str, Any]:
        """The dict fastavro writes with this model's schema."""
        return self.model_dump(mode="python")

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        """Validate a record fastavro read with this model's schema."""
        return cls.model_validate(record)


class AgeBand(StrEnum):
    AGE_0_4 = "AGE_0_4"
    AGE_5_10 = "AGE_5_10"
    AGE_11_15 = "AGE_11_15"
    AGE_16_17 = "AGE_16_17"
    AGE_18_24 = "AGE_18_24"
    AGE_25_34 = "AGE_25_34"
    AGE_35_49 = "AGE_35_49"
    AGE_50_64 = "AGE_50_64"
    AGE_65_PLUS = "AGE_65_PLUS"
    UNKNOWN = "UNKNOWN"


class Subject(AvroRecord):
    """Who an event is about: pseudonymous tokens and coarse attributes only."""

    tokens: SubjectTokens
    area_code: AreaCode | None = None
    age_band: AgeBand | None = None


class BasisKind(StrEnum):
    CONSENT = "CONSENT"
    AGREEMENT = "AGREEMENT"


class LawfulBasis(AvroRecord):
    """A live consent (``consent_id``) or a data-sharing agreement (``agreement_id``)."""

    kind: BasisKind
    consent_id: PartnerCode | None = None
    agreement_id: Code | None = None
    purpose: Code

    @model_validator(mode="after")
    def _names_its_basis(self) -> Self:
        if self.kind is BasisKind.CONSENT and not self.consent_id:
            raise ValueError("basis CONSENT needs a consent_id")
        if self.kind is BasisKind.AGREEMENT and not self.agreement_id:
            raise ValueError("basis AGREEMENT needs an agreement_id")
        return self


class HousingKind(StrEnum):
    ARREARS = "ARREARS"
    NOTICE_SERVED = "NOTICE_SERVED"
    HOMELESSNESS_PRESENTATION = "HOMELESSNESS_PRESENTATION"


class ArrearsBand(StrEnum):
    BAND_0_250 = "BAND_0_250"
    BAND_250_1000 = "BAND_250_1000"
    BAND_1000_3000 = "BAND_1000_3000"
    BAND_3000_PLUS = "BAND_3000_PLUS"


class EducationKind(StrEnum):
    ATTENDANCE = "ATTENDANCE"
    SUSPENSION = "SUSPENSION"
    EXCLUSION = "EXCLUSION"
    CHILD_MISSING_EDUCATION = "CHILD_MISSING_EDUCATION"


class AttendanceBand(StrEnum):
    PCT_95_PLUS = "PCT_95_PLUS"
    PCT_90_95 = "PCT_90_95"
    PCT_80_90 = "PCT_80_90"
    PCT_BELOW_80 = "PCT_BELOW_80"


class HealthKind(StrEnum):
    AE_ATTENDANCE = "AE_ATTENDANCE"
    MENTAL_HEALTH_REFERRAL = "MENTAL_HEALTH_REFERRAL"
    GP_REGISTRATION = "GP_REGISTRATION"


class NoticeType(StrEnum):
    SECTION_21 = "SECTION_21"
    SECTION_8 = "SECTION_8"
    POSSESSION_ORDER = "POSSESSION_ORDER"
    EVICTION_WARRANT = "EVICTION_WARRANT"
    OTHER = "OTHER"


class HomelessnessDuty(StrEnum):
    PREVENTION = "PREVENTION"
    RELIEF = "RELIEF"
    MAIN_DUTY = "MAIN_DUTY"
    NO_DUTY = "NO_DUTY"


class PoliceKind(StrEnum):
    WELFARE_CONCERN = "WELFARE_CONCERN"
    DOMESTIC_INCIDENT = "DOMESTIC_INCIDENT"


class DashRisk(StrEnum):
    STANDARD = "STANDARD"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class SocialCareKind(StrEnum):
    REFERRAL = "REFERRAL"
    ASSESSMENT = "ASSESSMENT"
    PLAN_OPENED = "PLAN_OPENED"
    PLAN_CLOSED = "PLAN_CLOSED"


class CareService(StrEnum):
    EARLY_HELP = "EARLY_HELP"
    CHILDREN_SOCIAL_CARE = "CHILDREN_SOCIAL_CARE"
    ADULT_SOCIAL_CARE = "ADULT_SOCIAL_CARE"


class PlanType(StrEnum):
    EARLY_HELP_PLAN = "EARLY_HELP_PLAN"
    CHILD_IN_NEED = "CHILD_IN_NEED"
    CHILD_PROTECTION = "CHILD_PROTECTION"
    LOOKED_AFTER = "LOOKED_AFTER"
    CARE_AND_SUPPORT = "CARE_AND_SUPPORT"


class ClosureReason(StrEnum):
    NEEDS_MET = "NEEDS_MET"
    STEPPED_DOWN = "STEPPED_DOWN"
    ESCALATED = "ESCALATED"
    MOVED_AWAY = "MOVED_AWAY"
    DISENGAGED = "DISENGAGED"


class WelfareKind(StrEnum):
    SANCTION = "SANCTION"
    CLAIM_CHANGE = "CLAIM_CHANGE"


class Benefit(StrEnum):
    UNIVERSAL_CREDIT = "UNIVERSAL_CREDIT"
    HOUSING_BENEFIT = "HOUSING_BENEFIT"
    PIP = "PIP"
    ESA = "ESA"
    JSA = "JSA"
    COUNCIL_TAX_REDUCTION = "COUNCIL_TAX_REDUCTION"
    OTHER = "OTHER"


class SanctionLevel(StrEnum):
    LOWEST = "LOWEST"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class ClaimChange(StrEnum):
    NEW_CLAIM = "NEW_CLAIM"
    CLAIM_CLOSED = "CLAIM_CLOSED"
    AWARD_REDUCED = "AWARD_REDUCED"
    AWARD_INCREASED = "AWARD_INCREASED"
    PAYMENT_SUSPENDED = "PAYMENT_SUSPENDED"


class CommunityKind(StrEnum):
    FOOD_BANK = "FOOD_BANK"
    DEBT_ADVICE = "DEBT_ADVICE"


class DebtBand(StrEnum):
    BAND_0_1000 = "BAND_0_1000"
    BAND_1000_5000 = "BAND_1000_5000"
    BAND_5000_15000 = "BAND_5000_15000"
    BAND_15000_PLUS = "BAND_15000_PLUS"


class ReferralKind(StrEnum):
    MADE = "MADE"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    COMPLETED = "COMPLETED"


class ReferralReason(StrEnum):
    HOUSING = "HOUSING"
    FINANCIAL = "FINANCIAL"
    MENTAL_HEALTH = "MENTAL_HEALTH"
    PHYSICAL_HEALTH = "PHYSICAL_HEALTH"
    SUBSTANCE_USE = "SUBSTANCE_USE"
    DOMESTIC_ABUSE = "DOMESTIC_ABUSE"
    SAFEGUARDING = "SAFEGUARDING"
    EDUCATION = "EDUCATION"
    EMPLOYMENT = "EMPLOYMENT"
    FOOD = "FOOD"
    SOCIAL_ISOLATION = "SOCIAL_ISOLATION"
    OTHER = "OTHER"


@cache
def _event_type(family: str, kind: StrEnum) -> str:
    # Asked twice an event as the SDK builds it (a few dozen kinds in all).
    return f"{family}.{kind.value.lower()}"


class _Payload(AvroRecord):
    avro_name: ClassVar[str]
    family: str
    kind: StrEnum

    @property
    def event_type(self) -> str:
        """'<family>.<kind>' in lower case, as the envelope's event_type must say."""
        return _event_type(self.family, self.kind)


class HousingEvent(_Payload):
    """Housing: arrears, notices, homelessness presentations."""

    avro_name: ClassVar[str] = "org.placehub.HousingEvent"
    family: Literal["housing"] = "housing"
    kind: HousingKind
    arrears_band: ArrearsBand | None = None
    notice_type: NoticeType | None = None
    homelessness_duty: HomelessnessDuty | None = None


class EducationEvent(_Payload):
    """Education: attendance, suspensions, exclusions, children missing education."""

    avro_name: ClassVar[str] = "org.placehub.EducationEvent"
    family: Literal["education"] = "education"
    kind: EducationKind
    attendance_band: AttendanceBand | None = None


class HealthEvent(_Payload):
    """Health: A&E attendances, mental-health referrals, GP registrations."""

    avro_name: ClassVar[str] = "org.placehub.HealthEvent"
    family: Literal["health"] = "health"
    kind: HealthKind


class PoliceEvent(_Payload):
    """Police: welfare concerns and domestic incidents (with the DASH risk level)."""

    avro_name: ClassVar[str] = "org.placehub.PoliceEvent"
    family: Literal["police"] = "police"
    kind: PoliceKind
    dash_risk: DashRisk | None = None
    children_present: bool | None = None


class SocialCareEvent(_Payload):
    """Social care and early help: referrals, assessments, plans opened and closed."""

    avro_name: ClassVar[str] = "org.placehub.SocialCareEvent"
    family: Literal["social_care"] = "social_care"
    kind: SocialCareKind
    service: CareService
    plan_type: PlanType | None = None
    closure_reason: ClosureReason | None = None


class WelfareEvent(_Payload):
    """Welfare and employment: benefit sanctions and claim changes."""

    avro_name: ClassVar[str] = "org.placehub.WelfareEvent"
    family: Literal["welfare"] = "welfare"
    kind: WelfareKind
    benefit: Benefit
    sanction_level: SanctionLevel | None = None
    claim_change: ClaimChange | None = None


class CommunityEvent(_Payload):
    """Community and charity support: food banks, debt advice."""

    avro_name: ClassVar[str] = "org.placehub.CommunityEvent"
    family: Literal["community"] = "community"
    kind: CommunityKind
    debt_band: DebtBand | None = None
    priority_debt: bool | None = None


class ReferralEvent(_Payload):
    """A referral between partners (from, to, reason code) and what became of it."""

    avro_name: ClassVar[str] = "org.placehub.ReferralEvent"
    family: Literal["referral"] = "referral"
    kind: ReferralKind
    from_partner: PartnerId
    to_partner: PartnerId
    reason_code: ReferralReason


Payload = Annotated[
    HousingEvent
    | EducationEvent
    | HealthEvent
    | PoliceEvent
    | SocialCareEvent
    | WelfareEvent
    | CommunityEvent
    | ReferralEvent,
    Field(discriminator="family"),
]
PAYLOAD_MODELS: tuple[type[_Payload], ...] = (
    HousingEvent,
    EducationEvent,
    HealthEvent,
    PoliceEvent,
    SocialCareEvent,
    WelfareEvent,
    CommunityEvent,
    ReferralEvent,
)
_PAYLOAD_BY_AVRO_NAME: dict[str, type[_Payload]] = {cls.avro_name: cls for cls in PAYLOAD_MODELS}


def payload_family(avro_name: str) -> str:
    """The event family ('housing', ...) of a payload record's full Avro name."""
    return str(_PAYLOAD_BY_AVRO_NAME[avro_name].model_fields["family"].default)


class PartnerEvent(AvroRecord):
    """The envelope every partner publishes; mirrors ``schemas/PartnerEvent.avsc``."""

    avro_schema: ClassVar[str] = "PartnerEvent"

    event_id: Annotated[
        str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    ]
    partner_id: PartnerId
    source_system: Code
    source_ref: SourceRef
    event_type: EventType
    occurred_at: EventTime
    recorded_at: EventTime
    subject: Subject
    basis: LawfulBasis
    payload: Payload

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Self:
        if self.event_type != self.payload.event_type:
            raise ValueError(
                f"event_type does not match the payload (expected {self.payload.event_type!r})"
            )
        return self

    def to_avro(self) -> dict[str, Any]:
        # The SDK encodes on every publish: the fields are taken as the model holds them
        # (its records are flat; enum members are strs to fastavro), not dumped by
        # pydantic (about 1.5 µs against 5.8 µs), and the payload's union branch named.
        record = dict(self.__dict__)
        record["subject"] = dict(self.subject.__dict__)
        record["basis"] = dict(self.basis.__dict__)
        fields = dict(self.payload.__dict__)
        del fields["family"]
        record["payload"] = (self.payload.avro_name, fields)
        return record

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        name, fields = record["payload"]
        payload_cls = _PAYLOAD_BY_AVRO_NAME.get(name)
        if payload_cls is None:
            raise ValueError("the payload's record type is not one this hub knows")
        family = payload_cls.model_fields["family"].default
        return cls.model_validate({**record, "payload": {**fields, "family": family}})


class ConsentStatus(StrEnum):
    GIVEN = "GIVEN"
    WITHDRAWN = "WITHDRAWN"


class ConsentRecord(AvroRecord):
    """A person's consent as one partner recorded it; mirrors ``ConsentRecord.avsc``."""

    avro_schema: ClassVar[str] = "ConsentRecord"

    consent_id: PartnerCode
    partner_id: PartnerId
    subject_tokens: SubjectTokens
    purposes: list[Code] = Field(min_length=1)
    sharing_partners: list[PartnerId] = Field(min_length=1)
    status: ConsentStatus
    recorded_at: AwareDatetime
    expires_at: AwareDatetime | None = None

    def is_live(self, at: datetime) -> bool:
        """Given, and not yet expired at ``at``."""
        return self.status is ConsentStatus.GIVEN and (
            self.expires_at is None or at < self.expires_at
        )

    def shares(self, partner_id: str, purpose: str, at: datetime) -> str | None:
        """None when this consent lets ``partner_id`` share for ``purpose`` at ``at``; else why."""
        if not self.is_live(at):
            return f"consent {self.consent_id} is {self.status.value.lower()} or expired"
        if purpose not in self.purposes:
            return f"consent {self.consent_id} does not cover purpose {purpose}"
        if partner_id not in self.sharing_partners:
            return f"consent {self.consent_id} does not cover partner {partner_id}"
        return None


class LinkMethod(StrEnum):
    SAME_RECORD = "SAME_RECORD"
    VERIFIED_MATCH = "VERIFIED_MATCH"
    PRACTITIONER_CONFIRMED = "PRACTITIONER_CONFIRMED"


class LinkStatus(StrEnum):
    ASSERTED = "ASSERTED"
    RETRACTED = "RETRACTED"


class IdentityLink(AvroRecord):
    """Two tokens asserted (or retracted) to be one person; mirrors ``IdentityLink.avsc``."""

    avro_schema: ClassVar[str] = "IdentityLink"

    link_id: PartnerCode
    partner_id: PartnerId
    tokens: list[Token] = Field(min_length=2, max_length=2)
    method: LinkMethod
    status: LinkStatus
    recorded_at: AwareDatetime
    basis: LawfulBasis | None = None

    @model_validator(mode="after")
    def _two_different_tokens(self) -> Self:
        if self.tokens[0] == self.tokens[1]:
            raise ValueError("a link needs two different tokens")
        return self

    @model_validator(mode="after")
    def _asserted_with_a_basis(self) -> Self:
        # Joining two identifiers is processing a person's data: it needs a lawful basis
        # like an event. Withdrawing evidence needs none.
        if self.status is LinkStatus.ASSERTED and self.basis is None:
            raise ValueError("basis: an asserted link needs a lawful basis (consent or agreement)")
        return self


class DeadLetter(AvroRecord):
    """A record the hub could not process, with why; mirrors ``DeadLetter.avsc``.

    Build one with ``hub.deadletter.dead_letter``, which keeps it under the broker's
    message size (a prefix of a large original, and says so).
    """

    avro_schema: ClassVar[str] = "DeadLetter"

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    original: bytes
    failed_at: AwareDatetime
    stage: str | None = None
    original_bytes: int | None = Field(default=None, ge=0)
    original_truncated: bool = False

    @model_validator(mode="after")
    def _says_what_it_kept(self) -> Self:
        if self.original_bytes is None:
            if self.original_truncated:
                raise ValueError("a truncated original needs original_bytes, its full length")
        elif self.original_bytes < len(self.original):
            raise ValueError("original_bytes is shorter than the original kept")
        elif self.original_truncated != (self.original_bytes > len(self.original)):
            raise ValueError("original_truncated must say whether original_bytes were all kept")
        return self


class AuditRecord(AvroRecord):
    """One access to person data; mirrors ``AuditRecord.avsc``."""

    avro_schema: ClassVar[str] = "AuditRecord"

    audit_id: str
    at: AwareDatetime
    actor: str
    role: str
    action: str
    person_id: str | None = None
    outcome: Literal["ok", "not-found", "denied"]
    # v2: the partners whose entries the access showed, so each data owner can list the
    # reads of its data (``hub.owner_reads``); empty in v1 records and when nothing showed.
    owners: list[PartnerId] = Field(default_factory=list)


# Why a practitioner may need a person they are not involved with (the audit and the data
# owners see the code, so it must say enough on its own; ``hub.break_glass``).
ReasonCode = Literal[
    "risk-to-life",  # someone's life or safety is at immediate risk
    "safeguarding-child",  # a child may be at risk of significant harm
    "safeguarding-adult",  # an adult at risk may be suffering abuse or neglect
    "urgent-care",  # urgent care needs what the person cannot tell us now
    "crime-prevention",  # preventing or detecting a serious crime
]


class BreakGlassRead(AvroRecord):
    """One break-glass read as its data owner sees it (the written reason is not kept);
    mirrors ``BreakGlassRead.avsc``."""

    avro_schema: ClassVar[str] = "BreakGlassRead"

    audit_id: str  # the read's record in hub.audit
    at: AwareDatetime
    owner: PartnerId  # the partner whose entries were shown
    actor: str  # user id of the reader
    actor_partner: PartnerId
    person_id: str
    reason_code: ReasonCode


class AlertSeverity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


PersonId = Annotated[str, Field(pattern=r"^p-[a-z2-7]{20}$")]
EventId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Fact = Annotated[str, Field(pattern=r"^[a-z_]+\.[a-z_]+(:[A-Z0-9_]+)?$")]


class Alert(AvroRecord):
    """A rule fired on a person's view, explained in codes; mirrors ``Alert.avsc``."""

    avro_schema: ClassVar[str] = "Alert"

    alert_id: Code
    person_id: PersonId
    rule_code: Code
    severity: AlertSeverity
    explanation: list[Fact] = Field(min_length=1)
    event_ids: list[EventId] = Field(min_length=1)
    partners: list[PartnerId] = Field(min_length=1)
    created_at: AwareDatetime
    recipients: list[PartnerId] = Field(default_factory=list)


class FeedbackOutcome(StrEnum):
    USEFUL = "USEFUL"
    NOT_USEFUL = "NOT_USEFUL"
    ACTED = "ACTED"
    ALREADY_KNOWN = "ALREADY_KNOWN"


class AlertFeedback(AvroRecord):
    """A practitioner's verdict on an alert; mirrors ``AlertFeedback.avsc``."""

    avro_schema: ClassVar[str] = "AlertFeedback"

    feedback_id: Code
    alert_id: Code
    partner_id: PartnerId
    practitioner_role: Code
    outcome: FeedbackOutcome
    at: AwareDatetime
    rule_code: Code | None = None
    reason_code: Code | None = None


class AlertInboxStatus(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    CLOSED = "CLOSED"


class AlertStatus(AvroRecord):
    """Where an alert stands in one recipient organisation's inbox; mirrors
    ``AlertStatus.avsc``."""

    avro_schema: ClassVar[str] = "AlertStatus"

    alert_id: Code
    partner_id: PartnerId
    status: AlertInboxStatus
    at: AwareDatetime


_PARTNER = r"[a-z0-9][a-z0-9-]{1,62}"
_COMBINATION = (
    r"^(?:[a-z_]+(\.[a-z0-9_]+)?(\+[a-z_]+(\.[a-z0-9_]+)?)*"
    rf"|{_PARTNER}>{_PARTNER}|{_PARTNER}\.[a-z_]+)$"
)


class PatternCell(AvroRecord):
    """One disclosure-controlled aggregate cell; mirrors ``PatternCell.avsc``.

    The model enforces the disclosure rule itself, so an unsafe cell cannot be built:
    a published count is a multiple of 5 and at least 5; a suppressed cell has no count.
    """

    avro_schema: ClassVar[str] = "PatternCell"

    window_start: AwareDatetime
    window_end: AwareDatetime
    area_code: AreaCode | None = None  # None: the whole place
    # Domains ('education+housing'), event types ('housing.arrears'), 'new', 'all'; for
    # flows partner codes: 'council-housing>city-food-bank', 'city-food-bank.made'.
    combination_code: Annotated[str, Field(max_length=200, pattern=_COMBINATION)]
    count: int | None = None
    suppressed: bool
    granularity: Literal["week", "month"] = "week"
    measure: Annotated[str, Field(pattern=r"^[a-z_]+$")] = "co_occurrence"
    rule: str = ""
    median_days: Annotated[int, Field(ge=0)] | None = None  # measure median_days only

    @model_validator(mode="after")
    def _disclosure_controlled(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.suppressed and self.count is not None:
            raise ValueError("a suppressed cell must not carry a count")
        if not self.suppressed and (self.count is None or self.count < 5 or self.count % 5):
            raise ValueError("an unsuppressed count must be a multiple of 5, at least 5")
        if self.median_days is not None and (self.suppressed or self.measure != "median_days"):
            raise ValueError("median_days: only on a published median_days cell")
        return self


class ResponseKind(StrEnum):
    OUTREACH = "OUTREACH"
    CO_LOCATION = "CO_LOCATION"
    PATHWAY_CHANGE = "PATHWAY_CHANGE"
    CAMPAIGN = "CAMPAIGN"
    OTHER = "OTHER"


class ResponseStatus(StrEnum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"
    WITHDRAWN = "WITHDRAWN"


_EMAIL_LIKE = re.compile(r"\S@\S")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _place_words(text: str) -> str:
    """Refuse what a steward's words about a place must not carry: a national identifier,
    an email address or a control character (names cannot be told apart from words, so the
    schema and the form say it)."""
    if _CONTROL.search(text):
        raise ValueError("must be one line of plain text")
    if _EMAIL_LIKE.search(text):
        raise ValueError("must not contain an email address")
    return _not_a_national_identifier(text)


PlaceWords = Annotated[str, AfterValidator(_place_words)]


def _distinct_areas(areas: list[str]) -> list[str]:
    if len(set(areas)) != len(areas):
        raise ValueError("an area is repeated")
    return areas


def _not_before_from(until: date | None, info: ValidationInfo) -> date | None:
    """A last day not before the model's ``from_date`` (a field declared before it)."""
    start = info.data.get("from_date")
    if until is not None and start is not None and until < start:
        raise ValueError("must not be before from_date")
    return until


# A collective response's facts, as a steward sends them (``hub.responses.ResponseBody``)
# and as ``hub.responses`` keeps them: one set of rules, so that a body the API takes is
# always a record it can write.
ResponseTitle = Annotated[PlaceWords, Field(min_length=3, max_length=80)]
ResponseDescription = Annotated[PlaceWords, Field(max_length=500)]
ResponseAreas = Annotated[
    list[AreaCode], Field(min_length=1, max_length=20), AfterValidator(_distinct_areas)
]
ResponseUntil = Annotated[date | None, AfterValidator(_not_before_from)]
ResponseMeasure = Literal["domain", "event_type", "co_occurrence", "new_or_returning"]


class ResponseChange(AvroRecord):
    """One amendment of a collective response; mirrors ``ResponseChange`` in
    ``CollectiveResponse.avsc``."""

    changed_at: AwareDatetime
    changed_by: Code
    status: ResponseStatus
    until_date: date | None = None


class CollectiveResponse(AvroRecord):
    """A steward's collective response to a pattern; mirrors ``CollectiveResponse.avsc``.

    Its words are about services and places: short, one line, and refused if they carry an
    identifier or an email address. What, where, from when and which pattern are fixed;
    amendments are appended to ``changes`` (the latest value is the whole history).
    """

    avro_schema: ClassVar[str] = "CollectiveResponse"

    response_id: Code
    title: ResponseTitle
    description: ResponseDescription = ""
    kind: ResponseKind
    area_codes: ResponseAreas
    from_date: date
    until_date: ResponseUntil = None
    granularity: Literal["week", "month"]
    measure: ResponseMeasure
    combination_code: Annotated[
        str, Field(max_length=200, pattern=r"^[a-z_]+(\.[a-z0-9_]+)?(\+[a-z_]+(\.[a-z0-9_]+)?)*$")
    ]
    recorded_by: Code
    recorded_at: AwareDatetime
    status: ResponseStatus = ResponseStatus.ACTIVE
    changes: list[ResponseChange] = Field(default_factory=list, max_length=100)


MODELS_BY_SCHEMA: dict[str, type[AvroRecord]] = {
    model.avro_schema: model
    for model in (
        PartnerEvent,
        ConsentRecord,
        IdentityLink,
        Alert,
        AlertFeedback,
        AlertStatus,
        PatternCell,
        CollectiveResponse,
        DeadLetter,
        AuditRecord,
        BreakGlassRead,
    )
}
