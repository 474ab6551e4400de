"""A newly onboarded partner's first event: one consent and one event through the SDK.

Run it after ``placehub partners add <id> ...`` with the settings its hand-over printed
(README, "Onboarding a partner")::

    python examples/first_event.py eastside-food-bank

The person is synthetic. Their consent names the new partner and council housing, so a
housing practitioner who works with them sees the food bank's visit in their view.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from connectors import ConsentDraft, EventDraft, Publisher
from hub.models import BasisKind, CommunityEvent, CommunityKind, LawfulBasis

PERSON = {"nhs": "943 476 5919"}  # a valid-format synthetic NHS number


def main(partner_id: str) -> None:
    consent_id = f"{partner_id}-consent-1"
    with Publisher(partner_id, "first-event-example") as publisher:
        publisher.publish_consent(
            ConsentDraft(
                consent_id=consent_id,
                identifiers=PERSON,
                purposes=["early-help"],
                sharing_partners=[partner_id, "council-housing"],
            )
        )
        receipt = publisher.publish(
            EventDraft(
                source_ref="visit-0001",  # the partner's own record reference
                identifiers=PERSON,
                basis=LawfulBasis(
                    kind=BasisKind.CONSENT, consent_id=consent_id, purpose="early-help"
                ),
                payload=CommunityEvent(kind=CommunityKind.FOOD_BANK),
                occurred_at=datetime.now(UTC),
            )
        )
    print(f"published event {receipt.event_id} to {receipt.topic}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/first_event.py <partner-id>")
    main(sys.argv[1])
