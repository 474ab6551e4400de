"""The typed edge: pydantic models that mirror the Avro schemas in ``schemas/``.

Models validate input and say precisely what is wrong; ``to_avro``/``from_avro`` turn them
into the dicts fastavro writes and reads. The ``.avsc`` files remain the contract.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hub.topics import PARTNER_ID_PATTERN

__all__ = [
    "AgeBand",
    "ArrearsBand",
    "AttendanceBand",
    "AuditRecord",
    "AvroRecord",
    "BasisKind",
    "ConsentRecord",
    "ConsentStatus",
    "DeadLetter",
    "EducationEvent",
    "EducationKind",
    "HealthEvent",
    "HealthKind",
    "HousingEvent",
    "HousingKind",
    "IdentityLink",
    "LawfulBasis",
    "LinkMethod",
    "LinkStatus",
    "PartnerEvent",
    "Payload",
    "Subject",
    "utc_now",
]

TOKEN_PATTERN = r"^[a-z][a-z0-9]{1,15}:[A-Za-z0-9_-]{43}$"
Token = Annotated[str, Field(pattern=TOKEN_PATTERN, description="scheme:base64url(HMAC-SHA256)")]
PartnerId = Annotated[str, Field(pattern=PARTNER_ID_PATTERN.pattern)]
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$")]
SourceRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]


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

    tokens: list[Token] = Field(min_length=1, max_length=16)
    area_code: Annotated[str, Field(pattern=r"^[EWSN]\d{8}$")] | None = None
    age_band: AgeBand | None = None


class BasisKind(StrEnum):
    CONSENT = "CONSENT"
    AGREEMENT = "AGREEMENT"


class LawfulBasis(AvroRecord):
    """A live consent (``consent_id``) or a data-sharing agreement (``agreement_id``)."""

    kind: BasisKind
    consent_id: Code | None = None
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


class _Payload(AvroRecord):
    avro_name: ClassVar[str]
    family: str
    kind: StrEnum

    @property
    def event_type(self) -> str:
        """'<family>.<kind>' in lower case, as the envelope's event_type must say."""
        return f"{self.family}.{self.kind.value.lower()}"

    def to_avro_union(self) -> tuple[str, dict[str, Any]]:
        """fastavro's (record name, fields) notation for a union branch."""
        return self.avro_name, self.model_dump(mode="json", exclude={"family"})


class HousingEvent(_Payload):
    """Housing: arrears, notices, homelessness presentations."""

    avro_name: ClassVar[str] = "org.placehub.HousingEvent"
    family: Literal["housing"] = "housing"
    kind: HousingKind
    arrears_band: ArrearsBand | None = None


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


Payload = Annotated[HousingEvent | EducationEvent | HealthEvent, Field(discriminator="family")]
_PAYLOAD_BY_AVRO_NAME: dict[str, type[_Payload]] = {
    cls.avro_name: cls for cls in (HousingEvent, EducationEvent, HealthEvent)
}


class PartnerEvent(AvroRecord):
    """The envelope every partner publishes; mirrors ``schemas/PartnerEvent.avsc``."""

    avro_schema: ClassVar[str] = "PartnerEvent"

    event_id: Annotated[
        str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    ]
    partner_id: PartnerId
    source_system: Code
    source_ref: SourceRef
    event_type: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    subject: Subject
    basis: LawfulBasis
    payload: Payload

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Self:
        if self.event_type != self.payload.event_type:
            raise ValueError(
                f"event_type {self.event_type!r} does not match the payload "
                f"(expected {self.payload.event_type!r})"
            )
        return self

    def to_avro(self) -> dict[str, Any]:
        record = self.model_dump(mode="python", exclude={"payload"})
        record["subject"] = self.subject.model_dump(mode="json")
        record["basis"] = self.basis.model_dump(mode="json")
        record["payload"] = self.payload.to_avro_union()
        return record

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        name, fields = record["payload"]
        payload_cls = _PAYLOAD_BY_AVRO_NAME.get(name)
        if payload_cls is None:
            raise ValueError(f"payload type {name!r} is not one this hub knows")
        family = payload_cls.model_fields["family"].default
        return cls.model_validate({**record, "payload": {**fields, "family": family}})


class ConsentStatus(StrEnum):
    GIVEN = "GIVEN"
    WITHDRAWN = "WITHDRAWN"


class ConsentRecord(AvroRecord):
    """A person's consent as one partner recorded it; mirrors ``ConsentRecord.avsc``."""

    avro_schema: ClassVar[str] = "ConsentRecord"

    consent_id: Code
    partner_id: PartnerId
    subject_tokens: list[Token] = Field(min_length=1, max_length=16)
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

    def covers(self, event: PartnerEvent, at: datetime) -> str | None:
        """None when this consent is a lawful basis for ``event``; else the reason it is not."""
        if not self.is_live(at):
            return f"consent {self.consent_id} is {self.status.value.lower()} or expired"
        if event.basis.purpose not in self.purposes:
            return f"consent {self.consent_id} does not cover purpose {event.basis.purpose}"
        if event.partner_id not in self.sharing_partners:
            return f"consent {self.consent_id} does not cover partner {event.partner_id}"
        if not set(event.subject.tokens) & set(self.subject_tokens):
            return f"consent {self.consent_id} is about a different person"
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

    link_id: Code
    partner_id: PartnerId
    tokens: list[Token] = Field(min_length=2, max_length=2)
    method: LinkMethod
    status: LinkStatus
    recorded_at: AwareDatetime

    @model_validator(mode="after")
    def _two_different_tokens(self) -> Self:
        if self.tokens[0] == self.tokens[1]:
            raise ValueError("a link needs two different tokens")
        return self


class DeadLetter(AvroRecord):
    """A record the hub could not process, with why; mirrors ``DeadLetter.avsc``."""

    avro_schema: ClassVar[str] = "DeadLetter"

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    original: bytes
    failed_at: AwareDatetime


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
