"""The partner side of placehub: what a partner's IT team runs.

- ``publisher``: the SDK (``Publisher``, ``EventDraft``, ``ConsentDraft``).
- ``pseudonymise``: identifier normalisation, checks and keyed tokens.
- ``simulate``: a synthetic place that publishes through the SDK.
"""

from connectors.pseudonymise import IdentifierError, token
from connectors.publisher import ConsentDraft, EventDraft, EventTooLarge, Publisher, Receipt

__all__ = [
    "ConsentDraft",
    "EventDraft",
    "EventTooLarge",
    "IdentifierError",
    "Publisher",
    "Receipt",
    "token",
]
