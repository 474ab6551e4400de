"""What an alert rule tests over a person's timeline: a count, distinct partners or
need domains, a sequence, or all of several.

Conditions are config, so they are models a rules file is validated against. Every
event-type pattern must match a type the contracts define: a misspelt pattern would
otherwise make a rule that silently never fires.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hub.models import PAYLOAD_MODELS

__all__ = [
    "KNOWN_EVENT_TYPES",
    "Condition",
    "CountOf",
    "DistinctOf",
    "Patterns",
    "SequenceOf",
    "matches",
]

MAX_DAYS = 730  # longer than any retention a rule could still see


def _known_event_types() -> frozenset[str]:
    """'<family>.<kind>' for every payload kind the contracts define (as
    ``_Payload.event_type`` spells it), so a new kind needs no list kept here."""
    types: set[str] = set()
    for model in PAYLOAD_MODELS:
        family = model.model_fields["family"].default
        kinds = model.model_fields["kind"].annotation
        assert isinstance(kinds, type) and issubclass(kinds, StrEnum)
        types.update(f"{family}.{kind.value.lower()}" for kind in kinds)
    return frozenset(types)


KNOWN_EVENT_TYPES = _known_event_types()
_FAMILIES = ", ".join(sorted({t.split(".", 1)[0] for t in KNOWN_EVENT_TYPES}))


def matches(event_type: str, patterns: list[str]) -> bool:
    """Whether ``event_type`` matches any of ``patterns`` (fnmatch, case-sensitive)."""
    return _matches(event_type, tuple(patterns))


@functools.lru_cache(maxsize=4096)
def _matches(event_type: str, patterns: tuple[str, ...]) -> bool:
    # Asked for every event of a timeline, for every rule, each time a person changes; the
    # event types and the rules' patterns are few, so the answers are kept.
    return any(fnmatchcase(event_type, pattern) for pattern in patterns)


def _matches_a_known_type(pattern: str) -> str:
    if not any(fnmatchcase(event_type, pattern) for event_type in KNOWN_EVENT_TYPES):
        raise ValueError(f"matches no known event type (families: {_FAMILIES})")
    return pattern


Pattern = Annotated[
    str,
    Field(pattern=r"^[a-z_*?]+(\.[a-z_*?]+)?$", max_length=64),
    AfterValidator(_matches_a_known_type),
]
Patterns = Annotated[list[Pattern], Field(min_length=1, max_length=20)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CountOf(_Shape):
    """At least ``at_least`` events matching ``event_types`` within the rule's window."""

    event_types: Patterns
    at_least: int = Field(ge=1, le=100)


class DistinctOf(_Shape):
    """Events (matching ``event_types``) from at least ``at_least`` different partners or
    need domains (the family part of the event type) within the rule's window."""

    at_least: int = Field(ge=2, le=20)
    event_types: Patterns = Field(default_factory=lambda: ["*"])


class SequenceOf(_Shape):
    """An event matching ``first`` followed, within ``within_days``, by one matching
    ``then``, with none matching ``unless_between`` in between (e.g. a plan closed)."""

    first: Patterns
    then: Patterns
    within_days: int = Field(ge=1, le=MAX_DAYS)
    unless_between: Patterns | None = None


class Condition(_Shape):
    """Exactly one shape; ``all_of`` holds when every part holds in the same window."""

    count: CountOf | None = None
    distinct_partners: DistinctOf | None = None
    distinct_domains: DistinctOf | None = None
    sequence: SequenceOf | None = None
    all_of: list[Condition] | None = Field(default=None, min_length=2, max_length=10)

    @model_validator(mode="after")
    def _exactly_one_shape(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            shapes = ", ".join(type(self).model_fields)
            raise ValueError(f"give exactly one of {shapes}")
        return self

    def sequences(self) -> Iterator[SequenceOf]:
        """Every sequence in this condition, nested ones included."""
        if self.sequence is not None:
            yield self.sequence
        for part in self.all_of or ():
            yield from part.sequences()
