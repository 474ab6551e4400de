"""Publish events from a partner system with the placehub SDK: copy and adapt this file.

Run it against a hub's Kafka with the place key your hub's operator gave you::

    PLACEHUB_BOOTSTRAP_SERVERS=kafka.place.example:9092 \
    PLACEHUB_PLACE_KEY_FILE=/etc/placehub/place.key \
    python publish_from_partner.py

Raw identifiers (here an NHS number and a council reference) stay in this process: the
``Publisher`` replaces them by keyed tokens before anything is sent. ``source_ref`` is
different: it travels in clear, so it is your record's own reference (a case number), never
an identifier of the person. Each failure has its own exception, so your code can tell "fix
this record" from "try again later". The SDK refuses to start without your place key (or
with a short one, or the public test key outside the demo and tests), and for a partner id
the hub does not know.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from connectors import (
    BrokerUnavailable,
    ConfigError,
    ConsentDraft,
    EventDraft,
    EventTooLarge,
    InvalidEvent,
    NoConsentReference,
    Publisher,
)
from hub.models import ArrearsBand, BasisKind, HousingEvent, HousingKind, LawfulBasis

PARTNER = "council-housing"  # your partner id, as the hub's operator registered it
SOURCE_SYSTEM = "northgate-housing"  # the system the records come from


def records_from_my_system() -> list[dict[str, str]]:
    """Stand-in for your own query: one dict per record (synthetic values here)."""
    person = {"nhs": "943 476 5919", "council": "HSG-0042"}
    return [
        {"ref": "case-1042", **person, "consent": "c-123", "band": "BAND_250_1000"},
        {"ref": "case-1043", **person, "consent": "", "band": "BAND_0_250"},
        {"ref": "case-1044", "nhs": "123 456 7890", "council": "HSG-0044", "consent": "c-123",
         "band": "BAND_0_250"},
    ]  # fmt: skip


def to_draft(record: dict[str, str]) -> EventDraft:
    """One of your records as an event draft (identifiers still raw: the SDK tokenises)."""
    basis = None
    if record["consent"]:
        basis = LawfulBasis(
            kind=BasisKind.CONSENT, consent_id=record["consent"], purpose="early-help"
        )
    return EventDraft(
        event_id=None,  # or a stable id of your own (UUID) so re-sending is harmless
        source_ref=record["ref"],  # your own record's reference: it travels in clear
        identifiers={"nhs": record["nhs"], "council": record["council"]},  # sent as tokens
        basis=basis,
        payload=HousingEvent(kind=HousingKind.ARREARS, arrears_band=ArrearsBand(record["band"])),
        occurred_at=datetime.now(UTC),
    )


def main() -> int:
    """Publish the consent, then each record; report what was sent and what was not."""
    try:
        with Publisher(PARTNER, SOURCE_SYSTEM) as publisher:
            return publish_all(publisher)
    # No or a weak place key (at start), or a partner the hub has not onboarded
    # (UnknownPartner, at the first publish): nothing was sent.
    except ConfigError as exc:
        print(f"not started: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG: an operator must fix the settings


def publish_all(publisher: Publisher) -> int:
    """Publish the consent, then each record, on a started publisher."""
    published = rejected = 0
    publisher.publish_consent(
        ConsentDraft(
            consent_id="c-123",
            identifiers={"nhs": "943 476 5919", "council": "HSG-0042"},
            purposes=["early-help"],
            sharing_partners=[PARTNER, "city-health"],
        )
    )
    for record in records_from_my_system():
        try:
            receipt = publisher.publish(to_draft(record))
        except NoConsentReference:
            print(f"{record['ref']}: not sent, no consent or agreement recorded")
        except EventTooLarge as exc:
            print(f"{record['ref']}: not sent, too large: {exc}")
        except InvalidEvent as exc:  # the record is wrong: fix it at source
            for pointer, message in exc.errors:
                print(f"{record['ref']}: not sent, {pointer}: {message}")
        except BrokerUnavailable as exc:  # Kafka is away: keep the record, retry later
            print(f"hub unavailable, stopping: {exc}", file=sys.stderr)
            return 75  # EX_TEMPFAIL: a scheduler should run us again
        else:
            published += 1
            print(f"{record['ref']}: sent as {receipt.event_id} (offset {receipt.offset})")
            continue
        rejected += 1
    print(f"published {published}, rejected {rejected}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
