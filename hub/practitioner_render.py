"""The practitioners' page as HTML: Jinja2 templates in ``hub/templates`` (package data).

Rendering is pure (a template and plain values in, a string out), so the unit tests check
every page's markup without a worker. Autoescaping is on for every template and undefined
names fail loudly, so a value can neither inject markup nor vanish silently. Dates are
shown in UTC, as the hub stores them; event types keep their codes (``housing.arrears``)
with a readable label beside them, since the codes are what partners' systems use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hub.models import FeedbackOutcome

__all__ = ["FEEDBACK_LABELS", "event_label", "render", "when"]

# The feedback buttons, in the order shown, with what each says.
FEEDBACK_LABELS: dict[str, str] = {
    FeedbackOutcome.USEFUL.value: "Useful",
    FeedbackOutcome.NOT_USEFUL.value: "Not useful",
    FeedbackOutcome.ALREADY_KNOWN.value: "Already known",
    FeedbackOutcome.ACTED.value: "Acted on it",
}


def when(iso: str | None) -> str:
    """An ISO timestamp as a practitioner reads it: ``3 Nov 2026, 14:05 UTC``."""
    if not iso:
        return "not known"
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{at.day} {at:%b %Y, %H:%M} UTC"


def event_label(event_type: str) -> str:
    """``housing.notice_served`` as ``Housing: notice served``."""
    family, _, kind = event_type.partition(".")
    return f"{family.capitalize()}: {kind.replace('_', ' ')}" if kind else family


_ENV = Environment(
    loader=PackageLoader("hub", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["when"] = when
_ENV.filters["event_label"] = event_label
_ENV.globals["FEEDBACK_LABELS"] = FEEDBACK_LABELS


def render(template: str, **values: Any) -> str:
    """``template`` (a file in ``hub/templates``) rendered with ``values``."""
    return _ENV.get_template(template).render(**values)
