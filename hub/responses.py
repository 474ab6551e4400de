"""The learning cycle: collective responses, and what became of the pattern each addresses.

A steward records a response (``ResponseBody``: what, where, from when, which published
pattern); ``recorded`` makes the ``CollectiveResponse`` the hub keeps on ``hub.responses``
and ``amended`` the next value under its key, carrying every earlier change, so a place's
learning history survives compaction. ``latest`` folds the topic into each response's
current value.

``evaluation`` sets the addressed pattern's trajectory in the response's areas beside
comparison areas, window by window, with each window marked before, during (it holds the
first day), after or ended (it starts past the last day). Every number is a published cell
of ``hub.patterns`` as ``GET /v1/patterns`` answers it: a suppressed cell stays ``None``
and nothing is summed, averaged or differenced (a combination of rounded cells is a number
disclosure control never saw). A window with published cells of the pattern but none for
an area is 0 there (control leaves empty cells out); a window with none at all is not shown.

Comparison areas (``COMPARISON``): every other area with a published cell of the pattern
in any window shown, less the areas of other responses to the same pattern that are not
withdrawn (those are not "without a response").

The second signal (``feedback_signal``): practitioners' verdicts on alerts, per rule,
before and after the first day, from ``hub.feedback.usefulness``. Rules shown (``RULES``):
those whose conditions read an event type of the pattern's need domains (every rule for
``new_or_returning``, which has none). Verdicts are counted across partners from the true
tallies and then put through the same disclosure rule; the share useful is worked out from
the published figures only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hub.alerts import Condition
from hub.disclosure import BASE, RULE, THRESHOLD
from hub.models import (
    CollectiveResponse,
    ResponseAreas,
    ResponseChange,
    ResponseDescription,
    ResponseKind,
    ResponseMeasure,
    ResponseStatus,
    ResponseTitle,
    ResponseUntil,
)

__all__ = [
    "COMPARISON",
    "RULES",
    "AmendBody",
    "ResponseBody",
    "amended",
    "comparison_areas",
    "evaluation",
    "event_types_read",
    "feedback_signal",
    "latest",
    "pattern_domains",
    "phases",
    "recorded",
    "rules_touching",
]

COMPARISON = (
    "every other area with a published cell of the pattern in a window shown, except the "
    "areas of other responses to the same pattern that are not withdrawn"
)
RULES = (
    "the place's alert rules whose conditions read an event type of the pattern's need "
    "domains (every rule for new_or_returning); verdicts counted across partners, then put "
    "through the disclosure rule"
)
Phase = Literal["before", "during", "after", "ended"]
_COMBINATION = {  # measure: the shape of its combination_code
    "domain": r"^[a-z_]+$",
    "event_type": r"^[a-z_]+\.[a-z0-9_]+$",
    "co_occurrence": r"^[a-z_]+\+[a-z_]+$",
    "new_or_returning": r"^(new|returning)$",
}
_COMBINATION_RULE = {
    "domain": "a need domain such as housing",
    "event_type": "an event type such as housing.arrears",
    "co_occurrence": "two need domains in order, such as education+housing",
    "new_or_returning": "new or returning",
}


class ResponseBody(BaseModel):
    """What a steward sends to record a response (the hub adds id, who, when, status)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: ResponseTitle
    description: ResponseDescription = ""
    kind: ResponseKind
    area_codes: ResponseAreas
    from_date: date
    until_date: ResponseUntil = None
    granularity: Literal["week", "month"]
    measure: ResponseMeasure
    combination_code: Annotated[str, Field(max_length=200)]

    @field_validator("combination_code")
    @classmethod
    def _fits_the_measure(cls, code: str, info: ValidationInfo) -> str:
        measure = info.data.get("measure")
        if measure in _COMBINATION and not re.fullmatch(_COMBINATION[measure], code):
            raise ValueError(f"for measure {measure} it must be {_COMBINATION_RULE[measure]}")
        if measure == "co_occurrence" and code.split("+") != sorted(set(code.split("+"))):
            raise ValueError("the two domains must differ and be in alphabetical order")
        return code


class AmendBody(BaseModel):
    """An amendment: the response's new status and, if it has one, its last day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ResponseStatus
    until_date: date | None = None


def recorded(
    body: ResponseBody, response_id: str, user_id: str, at: datetime
) -> CollectiveResponse:
    """The response ``user_id`` recorded at ``at``: active, with no changes yet."""
    return CollectiveResponse(
        response_id=response_id, recorded_by=user_id, recorded_at=at, **body.model_dump()
    )


def amended(
    response: CollectiveResponse, body: AmendBody, user_id: str, at: datetime
) -> CollectiveResponse:
    """The response's next value: the new status and last day, with the change appended.
    ValueError (``field: rule``) for a withdrawn response (it stays withdrawn) or a last
    day before the first."""
    if response.status is ResponseStatus.WITHDRAWN:
        raise ValueError("status: a withdrawn response stays withdrawn")
    if body.until_date is not None and body.until_date < response.from_date:
        raise ValueError("until_date: must not be before the response's from_date")
    change = ResponseChange(
        changed_at=at, changed_by=user_id, status=body.status, until_date=body.until_date
    )
    until = body.until_date if body.until_date is not None else response.until_date
    return response.model_copy(
        update={"status": body.status, "until_date": until, "changes": [*response.changes, change]}
    )


def latest(records: Iterable[CollectiveResponse]) -> dict[str, CollectiveResponse]:
    """Each response's current value, from records in the order they were written (one key
    is on one partition, so a topic read in offset order is in that order)."""
    found: dict[str, CollectiveResponse] = {}
    for record in records:
        found[record.response_id] = record
    return found


def _pattern(response: CollectiveResponse) -> tuple[str, str, str]:
    return response.granularity, response.measure, response.combination_code


def _day(iso: str) -> str:
    return iso[:10]


def phases(windows: Sequence[tuple[str, str]], first: date, last: date | None) -> list[Phase]:
    """Each window's place against the response (windows as (start, end) ISO dates, the end
    exclusive): before (it ended by the first day), during (it holds the first day), after,
    or ended (it starts after the last day)."""
    found: list[Phase] = []
    for start, end in windows:
        if date.fromisoformat(end) <= first:
            found.append("before")
        elif last is not None and date.fromisoformat(start) > last:
            found.append("ended")
        elif date.fromisoformat(start) < first:
            found.append("during")
        else:
            found.append("after")
    return found


def comparison_areas(
    response: CollectiveResponse,
    cells: Iterable[Mapping[str, Any]],
    responses: Iterable[CollectiveResponse],
) -> list[str]:
    """The areas ``response`` is compared with (``COMPARISON``), by code; ``cells`` are the
    pattern's published cells."""
    covered = set(response.area_codes)
    for other in responses:
        if (
            other.response_id != response.response_id
            and other.status is not ResponseStatus.WITHDRAWN
            and _pattern(other) == _pattern(response)
        ):
            covered |= set(other.area_codes)
    return sorted({c["area_code"] for c in cells if c["area_code"]} - covered)


def evaluation(
    response: CollectiveResponse,
    cells: Iterable[Mapping[str, Any]],
    responses: Iterable[CollectiveResponse],
    feedback: Mapping[str, Any],
) -> dict[str, Any]:
    """The response with its pattern's trajectory (module docstring): ``cells`` as
    ``GET /v1/patterns`` answers them (any patterns: the response's are picked out),
    ``responses`` every response of the place, ``feedback`` ``feedback_signal``'s answer."""
    granularity, measure, combination = _pattern(response)
    mine = [
        c
        for c in cells
        if (c["granularity"], c["measure"], c["combination_code"]) == _pattern(response)
    ]
    spans = sorted({(_day(c["window_start"]), _day(c["window_end"])) for c in mine})
    windows = [start for start, _ in spans]
    by_area: dict[str | None, dict[str, int | None]] = {}
    for cell in mine:
        published = None if cell["suppressed"] else cell["count"]
        by_area.setdefault(cell["area_code"], {})[_day(cell["window_start"])] = published

    def series(area: str | None) -> dict[str, Any]:
        counts = by_area.get(area, {})
        return {"area_code": area, "values": [counts.get(w, 0) for w in windows]}

    marks = phases(spans, response.from_date, response.until_date)
    starts = [w for w, phase in zip(windows, marks, strict=True) if phase != "before"]
    return {
        "response": response.model_dump(mode="json"),
        "disclosure": {"rule": RULE, "threshold": THRESHOLD, "base": BASE},
        "pattern": {
            "granularity": granularity,
            "measure": measure,
            "combination_code": combination,
        },
        "windows": windows,
        "phases": marks,
        "from_window": starts[0] if starts else None,
        "areas": [series(area) for area in response.area_codes],
        "comparison_rule": COMPARISON,
        "comparison": [series(a) for a in comparison_areas(response, mine, responses)],
        "place": series(None),
        "feedback": feedback,
    }


def pattern_domains(measure: str, combination_code: str) -> set[str] | None:
    """The need domains a pattern is about (None: it is about none, new_or_returning)."""
    if measure == "new_or_returning":
        return None
    return {part.split(".", 1)[0] for part in combination_code.split("+")}


def event_types_read(condition: Condition) -> list[str]:
    """The event-type patterns a rule's condition reads (a sequence's first and then; its
    ``unless_between`` only stops one), nested conditions included."""
    found: list[str] = []
    for shape in (condition.count, condition.distinct_partners, condition.distinct_domains):
        if shape is not None:
            found += shape.event_types
    for sequence in condition.sequences():
        found += [*sequence.first, *sequence.then]
    for part in condition.all_of or ():
        if part.sequence is None:  # its sequences are in condition.sequences() already
            found += event_types_read(part)
    return found


def rules_touching(
    rule_patterns: Mapping[str, Collection[str]], domains: set[str] | None
) -> list[str]:
    """The rules (code: the event-type patterns their conditions read) that read an event
    of one of ``domains`` (all rules for None), by code."""
    if domains is None:
        return sorted(rule_patterns)
    return sorted(
        code
        for code, patterns in rule_patterns.items()
        if any(fnmatchcase(d, p.split(".", 1)[0]) for p in patterns for d in domains)
    )


def feedback_signal(
    rules: Sequence[str],
    before: Mapping[str, Mapping[str, Mapping[str, Any]]],
    after: Mapping[str, Mapping[str, Mapping[str, Any]]],
    disclose: Callable[[int], int | None],
) -> dict[str, Any]:
    """Per rule in ``rules``: verdicts and verdicts USEFUL or ACTED before and after the
    first day (``before``/``after``: ``usefulness`` of the feedback given then), counted
    across partners and put through ``disclose``; the share from those figures."""

    def side(usefulness: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
        partners = list((usefulness or {}).values())
        verdicts = sum(p["verdicts"] for p in partners)
        useful = sum(p["USEFUL"] + p["ACTED"] for p in partners)
        shown_verdicts, shown_useful = _shown(verdicts, disclose), _shown(useful, disclose)
        share = None
        if shown_verdicts and shown_useful is not None:
            share = round(shown_useful / shown_verdicts, 2)
        return {"verdicts": shown_verdicts, "useful": shown_useful, "share_useful": share}

    return {
        "which": RULES,
        "rules": [
            {"rule": rule, "before": side(before.get(rule)), "after": side(after.get(rule))}
            for rule in rules
        ],
    }


def _shown(count: int, disclose: Callable[[int], int | None]) -> int | None:
    return 0 if count == 0 else disclose(count)
