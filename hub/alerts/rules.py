"""Alert rules as code: one YAML file per rule in the deployment's alerts folder.

A rule names a condition over a person's timeline, how urgent it is, for which purpose,
who is told and how often. Rules are validated when a worker starts, so a bad file stops
the start naming file, line, key and reason (never a value), instead of a rule that
silently never fires.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hub.alerts.conditions import MAX_DAYS, Condition
from hub.config_files import ConfigFileError, config_error, load_config_file
from hub.models import AlertSeverity, Code, PartnerId

__all__ = ["Recipients", "Rule", "RuleBook", "RuleError", "load_rules"]


# A bad rule file raises the config-file error every deployment file raises.
RuleError = ConfigFileError


class Recipients(BaseModel):
    """Who is told: ``involved`` (the partners involved with the person), ``lead`` (the
    partner holding an open plan for them), or a named partner, optionally one of its teams.
    Written in YAML as ``involved``, ``lead``, ``council-housing`` or
    ``council-housing/early-help-hub``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["involved", "lead", "partner"]
    partner: PartnerId | None = None
    team: Code | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value in ("involved", "lead"):
            return {"kind": value}
        partner, slash, team = value.partition("/")
        return {"kind": "partner", "partner": partner, "team": team if slash else None}

    @model_validator(mode="after")
    def _partner_only_when_named(self) -> Recipients:
        if (self.kind == "partner") != (self.partner is not None) or (
            self.team is not None and self.partner is None
        ):
            raise ValueError("a partner (and a team) go only with kind partner")
        return self


class Rule(BaseModel):
    """One alert rule: a condition over the events of the last ``window_days``, plus who is
    told, why (``purpose``), how urgently, and how long a repeat stays quiet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    title: str = Field(min_length=1, max_length=200)
    severity: AlertSeverity
    purpose: Code
    recipients: Recipients
    window_days: int = Field(ge=1, le=MAX_DAYS)
    cooldown_days: int = Field(ge=0, le=MAX_DAYS)
    condition: Condition

    @field_validator("condition")
    @classmethod
    def _sequences_fit_the_window(cls, condition: Condition, info: ValidationInfo) -> Condition:
        window_days = info.data.get("window_days")
        for sequence in condition.sequences():
            if window_days is not None and sequence.within_days > window_days:
                raise ValueError("a sequence's within_days is longer than window_days")
        return condition


class RuleBook:
    """The deployment's alert rules, by code, in file-name order."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_code = {rule.code: rule for rule in rules}

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.by_code.values())

    def __len__(self) -> int:
        return len(self.by_code)

    def get(self, code: str) -> Rule | None:
        """The rule with this code (an alert names the rule it came from), or None."""
        return self.by_code.get(code)


def load_rules(directory: Path, partners: Collection[str] | None = None) -> RuleBook:
    """Every ``*.yaml`` rule in ``directory`` (none if it does not exist). With ``partners``
    (the place's partner ids), a rule telling any other partner is refused. Raises
    RuleError naming file, line, key and reason."""
    rules: dict[str, tuple[Rule, Path]] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        rule = _load_rule(path)
        if rule.code in rules:
            earlier = rules[rule.code][1].name
            raise _error(path, ("code",), f"code: rule code is already defined in {earlier}")
        partner = rule.recipients.partner
        if partners is not None and partner is not None and partner not in partners:
            raise _error(path, ("recipients",), "recipients: not a partner of the partners file")
        rules[rule.code] = rule, path
    return RuleBook(rule for rule, _ in rules.values())


def _load_rule(path: Path) -> Rule:
    return load_config_file(path, Rule, "alert rule")


def _error(path: Path, loc: Sequence[str | int], reason: str) -> RuleError:
    """A RuleError at the line of ``loc`` (a key path) in ``path``."""
    return config_error(path, loc, reason)
