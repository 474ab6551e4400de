"""Shared by the connector tests: mappings, synthetic rows and reading what was published."""

from __future__ import annotations

from pathlib import Path

from hub._admin import ensure_partner_topics, ensure_topic
from hub.config import Settings
from hub.models import ConsentRecord, PartnerEvent
from hub.partner_join import register_subjects
from hub.registry import SchemaRegistry
from hub.serde import Serde
from hub.topics import Topics
from tests.integration.helpers import read_topic

GOOD_NHS = "943 476 5919"  # synthetic, valid check digit; searched for in topic bytes
BAD_NHS = "943 476 5910"  # wrong check digit

CSV_MAPPING = """\
source_system: sims-education
timezone: Europe/London
csv: {encoding: ENCODING, delimiter: "DELIM"}
fields:
  source_ref: PupilId
  occurred_at: {column: Date, format: "%d/%m/%Y"}
  identifiers.nhs: NHS
  basis.kind: {value: CONSENT}
  basis.consent_id: Consent
  basis.purpose: {value: early-help}
  payload.family: {value: education}
  payload.kind: {column: Type, map: {Att: ATTENDANCE, Susp: SUSPENSION}}
  area_code: {column: Ward, optional: true}
"""


def write_mapping(folder: Path, encoding: str = "utf-8", delimiter: str = ",") -> Path:
    """A mapping file for the school export used across the CSV tests."""
    path = folder / "mapping.yaml"
    path.write_text(CSV_MAPPING.replace("ENCODING", encoding).replace("DELIM", delimiter))
    return path


def onboard(settings: Settings, *partners: str) -> None:
    """What the hub does before a partner's connectors publish (a worker's prepare(), or the
    admin onboarding it): its topics made and the schemas it writes registered. Connectors
    create and register nothing, so a test with no worker running calls this first."""
    topics = Topics(settings.topic_prefix)
    registry = SchemaRegistry(settings)
    serde = Serde(registry)
    ensure_topic(settings, topics.consent, partitions=settings.partitions, compact=True)
    serde.schema_for(ConsentRecord.avro_schema, f"{topics.consent}-value")
    for partner in partners:  # as the worker and `placehub partners add` do
        ensure_partner_topics(settings, partner)
        register_subjects(serde, topics, partner)
    registry.close()


def published_events(settings: Settings, partner: str) -> list[PartnerEvent]:
    """Every event on ``partner``'s topic, decoded (duplicates included)."""
    serde = Serde(SchemaRegistry(settings))
    records = read_topic(settings, Topics(settings.topic_prefix).partner(partner), timeout_s=60)
    return [serde.decode(value, PartnerEvent) for _, value, _ in records]


def raw_topic_bytes(settings: Settings, partner: str) -> bytes:
    """All keys and values on ``partner``'s topic, concatenated (to search for leaks)."""
    records = read_topic(settings, Topics(settings.topic_prefix).partner(partner))
    return b"".join((key or b"") + (value or b"") for key, value, _ in records)
