"""Alert rules: which joined-up pictures of a person call for a practitioner to look.

Pure, no Faust or Kafka; the alerts stage builds on it. Reading guide:

- ``conditions``: what a rule tests (count, distinct partners or domains, a sequence,
  all of several), with event-type patterns checked against the contracts' types.
- ``rules``: a rule (severity, purpose, recipients, window, cooldown, condition) and
  ``load_rules``, which reads the deployment's alerts folder and refuses a bad file
  naming file, line, key and reason.
- ``evaluate``: whether a rule holds over a person's timeline now, the events that
  explain it (codes and dates only) and when it can next weaken.
- ``cooldown``: one open alert per rule per person; new, escalated or suppressed.
"""

from hub.alerts.conditions import (
    KNOWN_EVENT_TYPES,
    Condition,
    CountOf,
    DistinctOf,
    SequenceOf,
)
from hub.alerts.cooldown import Decision, OpenAlert, decide
from hub.alerts.evaluate import (
    Match,
    Occurrence,
    TimelineItem,
    evaluate,
    evaluate_book,
    next_close,
    occurrences,
)
from hub.alerts.rules import Recipients, Rule, RuleBook, RuleError, load_rules

__all__ = [
    "KNOWN_EVENT_TYPES",
    "Condition",
    "CountOf",
    "Decision",
    "DistinctOf",
    "Match",
    "Occurrence",
    "OpenAlert",
    "Recipients",
    "Rule",
    "RuleBook",
    "RuleError",
    "SequenceOf",
    "TimelineItem",
    "decide",
    "evaluate",
    "evaluate_book",
    "load_rules",
    "next_close",
    "occurrences",
]
