"""The partner side of placehub: what a partner's IT team runs.

- ``publisher``: the SDK (``Publisher`` and its ``EventDraft``, ``ConsentDraft``, ``LinkDraft``).
- ``delivery``: acknowledged, retried sends to Kafka (every connector ends there).
- ``pseudonymise``: identifier normalisation, checks and keyed tokens.
- ``mapping``: columns to events, for the CSV drop and the SQL poll.
- ``csv_drop``, ``sql_poll``: the file and database connectors.
- ``simulate``: a synthetic place that publishes through the SDK.
- ``events``: reading hub.events, each event once (``EventReader``).
- ``webhooks``: verifying the hub's signed alert notifications (``WebhookVerifier``).
"""

from connectors.delivery import Delivery, Outgoing, Receipt
from connectors.events import EventReader, PersonEvent
from connectors.pseudonymise import (
    IdentifierError,
    PlaceKey,
    load_place_key,
    normalise_council_ref,
    normalise_nhs_number,
    normalise_upn,
    person_key,
    token,
)
from connectors.publisher import (
    ConsentDraft,
    EventDraft,
    EventTooLarge,
    LinkDraft,
    NoConsentReference,
    Publisher,
    UnknownPartner,
)
from connectors.webhooks import DuplicateDelivery, WebhookRejected, WebhookVerifier
from hub.errors import BrokerError, ConfigError, EventRejected

# The names a partner's code catches, by failure.
InvalidEvent = EventRejected
BrokerUnavailable = BrokerError

__all__ = [
    "BrokerUnavailable",
    "ConfigError",
    "ConsentDraft",
    "Delivery",
    "DuplicateDelivery",
    "EventDraft",
    "EventReader",
    "EventTooLarge",
    "IdentifierError",
    "InvalidEvent",
    "LinkDraft",
    "NoConsentReference",
    "Outgoing",
    "PersonEvent",
    "PlaceKey",
    "Publisher",
    "Receipt",
    "UnknownPartner",
    "WebhookRejected",
    "WebhookVerifier",
    "load_place_key",
    "normalise_council_ref",
    "normalise_nhs_number",
    "normalise_upn",
    "person_key",
    "token",
]
