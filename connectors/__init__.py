"""The partner side of placehub: what a partner's IT team runs.

The SDK installs on its own as the ``placehub-connectors`` wheel (``make sdk``; ``sdk/``):
this package but for the hub-side modules marked below, with the ``hub`` modules it
imports (none of them Faust's, aiokafka's or aiohttp's, nor a private ``hub._*`` one) and
the ``.avsc`` files. It needs no admin rights on Kafka: it creates no topic.

- ``publisher``: the SDK (``Publisher`` and its ``EventDraft``, ``ConsentDraft``, ``LinkDraft``).
- ``delivery``: acknowledged, retried sends to Kafka (every connector ends there).
- ``pseudonymise``: identifier normalisation, checks and keyed tokens.
- ``mapping``: columns to events, for the CSV drop and the SQL poll.
- ``csv_drop``, ``sql_poll``: the file and database connectors (``sql_poll`` hub-side only:
  it creates its positions topic).
- ``simulate``: a synthetic place that publishes through the SDK (hub-side only: it knows
  the hub's person ids).
- ``events``: reading hub.events, each event once (``EventReader``; hub-side only: a
  partner may not read hub.events).
- ``webhooks``: verifying the hub's signed alert notifications (``WebhookVerifier``).
"""

from connectors.delivery import Delivery, Outgoing, Receipt
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
    "EventTooLarge",
    "IdentifierError",
    "InvalidEvent",
    "LinkDraft",
    "NoConsentReference",
    "Outgoing",
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
