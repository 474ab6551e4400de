"""``GET /v1/patterns``: the place's patterns for stewards (and admins), with filters, and
``GET /v1/patterns/export?format=csv|json``: the same as a file (``hub.exports``: the rule
on every row, each row's window, the filters in the JSON; ``/v1/flows/export`` likewise).

Every number comes from ``hub.patterns`` as the patterns stage published it, after
disclosure control (``hub.stages.patterns``): the API never sees a true count, and nothing
here adds cells up (a sum of published cells is what a differencing attack starts from).
Each cell carries its trend against the previous window's published cell of the same
measure, area and combination (null where either is suppressed or absent). The flows'
cells, on the same topic, are served by ``GET /v1/flows`` (``hub.flows_api``).

Filters: ``area`` (repeatable; a ward code, or ``place`` for whole-place cells), ``domain``
(cells about that need domain), ``measure``, ``window=week|month``, and ``from``/``to``
(dates: windows starting from ``from`` up to ``to``, inclusive). A bad filter is a 422
naming the field and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import partial
from typing import Any, TypeVar

from faust.web import Request, Response, View

from hub._http import problem
from hub.app import Hub
from hub.disclosure import BASE, RULE, THRESHOLD
from hub.errors import BrokerError
from hub.exports import as_csv, as_json
from hub.models import PatternCell
from hub.pattern_book import pattern_book
from hub.routing import caller
from hub.stages.pattern_windows import MEASURES, Window, cell_key, domain_of
from hub.users import Role, User

__all__ = [
    "LATE_MEASURE",
    "PLACE",
    "BadFilter",
    "Filters",
    "answer",
    "asked",
    "export_rows",
    "in_range",
    "install_patterns_api",
    "parse_filters",
    "patterns_for",
    "refusal",
]

PLACE = "place"  # the area filter's word for whole-place cells
LATE_MEASURE = "late_events"
_AREA = re.compile(r"^[EWSN]\d{8}$")
_DOMAIN = re.compile(r"^[a-z_]{1,40}$")
_FIELDS = ("area", "domain", "measure", "window", "from", "to")

A = TypeVar("A")  # what a request cuts from the published cells


class BadFilter(ValueError):
    """Raised when a filter breaks its rule; the message is ``field: rule``."""


@dataclass(frozen=True)
class Filters:
    """What a steward asks for; every field unset means everything."""

    areas: tuple[str, ...] = ()
    domain: str | None = None
    measure: str | None = None
    window: str | None = None
    from_: date | None = None
    to: date | None = None

    def as_json(self) -> dict[str, Any]:
        """The filters as the answer states them."""
        return {
            "area": list(self.areas),
            "domain": self.domain,
            "measure": self.measure,
            "window": self.window,
            "from": self.from_.isoformat() if self.from_ else None,
            "to": self.to.isoformat() if self.to else None,
        }


def parse_filters(query: Mapping[str, list[str]], also: tuple[str, ...] = ()) -> Filters:
    """The filters in a query (each name with every value given); ``also`` names other
    parameters the endpoint reads. ``BadFilter`` names the field and the rule."""
    for name, values in query.items():
        if name not in _FIELDS and name not in also:
            raise BadFilter(f"query: the filters of patterns are {', '.join(_FIELDS)}")
        if name != "area" and len(values) > 1:
            raise BadFilter(f"{name}: give it once")

    def one(name: str) -> str | None:
        values = query.get(name) or []
        return values[0] if values else None

    areas = tuple(query.get("area") or [])
    if any(a != PLACE and not _AREA.match(a) for a in areas):
        raise BadFilter(f"area: must be an ONS code such as E05000001, or {PLACE}")
    domain, measure, window = one("domain"), one("measure"), one("window")
    if domain is not None and not _DOMAIN.match(domain):
        raise BadFilter("domain: must be a need domain such as housing (lower case letters)")
    if measure is not None and measure not in MEASURES:
        raise BadFilter(f"measure: must be one of {', '.join(MEASURES)}")
    if window is not None and window not in ("week", "month"):
        raise BadFilter("window: must be week or month")
    from_, to = _date("from", one("from")), _date("to", one("to"))
    if from_ and to and to < from_:
        raise BadFilter("to: must not be before from")
    return Filters(areas, domain, measure, window, from_, to)


def _date(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name}: must be a date, YYYY-MM-DD") from None


def in_range(cell: PatternCell, filters: Filters) -> bool:
    """Whether ``cell``'s window is one ``filters`` ask for (granularity, from, to)."""
    if filters.window and cell.granularity != filters.window:
        return False
    start = cell.window_start.astimezone(UTC)
    if filters.from_ and start < datetime.combine(filters.from_, time(), UTC):
        return False
    return not (filters.to and start.date() > filters.to)


def _about(cell: PatternCell, filters: Filters) -> bool:
    if filters.measure and cell.measure != filters.measure:
        return False
    if filters.areas and (cell.area_code or PLACE) not in filters.areas:
        return False
    if filters.domain is None:
        return True
    if cell.measure == "new_or_returning":
        return False  # not about a domain
    return filters.domain in {domain_of(part) for part in cell.combination_code.split("+")}


def _window(cell: PatternCell) -> Window:
    return Window(cell.granularity, cell.window_start.astimezone(UTC))


def _trend(count: int | None, previous: int | None) -> str | None:
    if count is None or previous is None:
        return None
    return "up" if count > previous else "down" if count < previous else "same"


def answer(cells: Mapping[str, PatternCell], filters: Filters) -> dict[str, Any]:
    """The answer to ``filters`` over the published ``cells`` (key → cell), in its shape."""
    shown, late = [], []
    for cell in sorted(cells.values(), key=_order):
        if not in_range(cell, filters):
            continue
        window = _window(cell)
        if cell.measure == LATE_MEASURE:
            late.append(
                {
                    "granularity": cell.granularity,
                    "window_start": window.start.isoformat(),
                    "count": cell.count,
                    "suppressed": cell.suppressed,
                }
            )
            continue
        if cell.measure not in MEASURES or not _about(cell, filters):  # flows: GET /v1/flows
            continue
        before = cells.get(
            f"{window.previous().id}|"
            + cell_key(cell.measure, cell.area_code, cell.combination_code)
        )
        previous = before.count if before is not None else None
        shown.append(
            {
                "granularity": cell.granularity,
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "measure": cell.measure,
                "area_code": cell.area_code,
                "combination_code": cell.combination_code,
                "count": cell.count,
                "suppressed": cell.suppressed,
                "previous": previous,
                "trend": _trend(cell.count, previous),
            }
        )
    return {
        "disclosure": {"rule": RULE, "threshold": THRESHOLD, "base": BASE},
        "filters": filters.as_json(),
        "cells": shown,
        "late_events": late,
    }


def _order(cell: PatternCell) -> tuple[str, datetime, str, str, str]:
    return (
        cell.granularity,
        cell.window_start,
        cell.measure,
        cell.area_code or "",
        cell.combination_code,
    )


async def patterns_for(hub: Hub, filters: Filters) -> dict[str, Any]:
    """The patterns ``filters`` ask for, as published so far (``BrokerError`` if
    ``hub.patterns`` could not be read to its end)."""
    return answer(await pattern_book(hub).current(), filters)


def refusal(user: User) -> str | None:
    """Why ``user`` may not read the patterns, or None if they may (stewards, admins)."""
    if user.role in (Role.STEWARD, Role.ADMIN):
        return None
    return f"role {user.role.value} may not read the place's patterns"


async def asked(
    hub: Hub,
    view: View,
    request: Request,
    parse: Callable[[Mapping[str, list[str]]], Filters],
    answer_of: Callable[[Mapping[str, PatternCell], Filters], A],
    what: str,
) -> tuple[A, Filters] | Response:
    """What a steward's request for the published cells asks (``parse`` reads the query's
    filters, ``answer_of`` cuts the cells), with its filters; or the problem reply to send
    instead: 401 without a valid token, 403 for a role that may not read them, 422 naming
    a bad filter's field and rule, 503 if ``what`` could not be read. One sequence for
    ``GET /v1/patterns`` and ``GET /v1/flows``."""
    user = caller(hub, request)
    if user is None:
        return problem(view, 401, "a valid bearer token is required")
    refused = refusal(user)
    if refused:
        return problem(view, 403, refused)
    query: Any = request.query  # a multidict: area may be given again
    try:
        filters = parse({k: query.getall(k) for k in query})
    except BadFilter as exc:
        field, rule = str(exc).split(": ", 1)
        return problem(view, 422, str(exc), [(field, rule)])
    try:
        return answer_of(await pattern_book(hub).current(), filters), filters
    except BrokerError:
        return problem(view, 503, f"the {what} could not be read; try again")


def export_rows(body: dict[str, Any]) -> list[dict[str, object]]:
    """An answer's cells and late events as the rows of an export (``hub.exports``): each
    with its window, as published."""
    rows: list[dict[str, object]] = [
        {k: v for k, v in cell.items() if k not in ("previous", "trend")} for cell in body["cells"]
    ]
    for late in body["late_events"]:
        window = Window(late["granularity"], datetime.fromisoformat(late["window_start"]))
        rows.append(
            {
                "granularity": late["granularity"],
                "window_start": late["window_start"],
                "window_end": window.end.isoformat(),
                "measure": LATE_MEASURE,
                "area_code": None,
                "combination_code": "all",
                "count": late["count"],
                "suppressed": late["suppressed"],
            }
        )
    return rows


def export_reply(
    view: View,
    request: Request,
    name: str,
    rows: list[dict[str, object]],
    rule: str,
    filters: dict[str, Any],
) -> Response:
    """``rows`` as the file ``?format=`` asks for (csv, the default, or json), with the rule
    and the filters in it (``hub.exports``: it refuses a row no rule lets out); 422 naming
    the field for another format."""
    shape = request.query.get("format", "csv")
    if shape not in ("csv", "json"):
        return problem(
            view, 422, "format: must be csv or json", [("format", "must be csv or json")]
        )
    headers = {"Content-Disposition": f'attachment; filename="{name}.{shape}"'}
    if shape == "json":
        return view.json(as_json(rows, rule, filters), headers=headers)
    return view.text(as_csv(rows, rule), content_type="text/csv", headers=headers)


def install_patterns_api(hub: Hub) -> None:
    """Add ``GET /v1/patterns`` and its export; stop the pattern book with the web server."""

    pattern_book(hub).close_with_web_server()

    class PatternsPage(View):
        """``GET /v1/patterns``: the place's published patterns, filtered."""

        async def get(self, request: Request) -> Response:
            found = await asked(hub, self, request, parse_filters, answer, "patterns")
            return self.json(found[0]) if isinstance(found, tuple) else found

    class PatternsExport(View):
        """``GET /v1/patterns/export?format=csv|json``: the same, as a file with the rule."""

        async def get(self, request: Request) -> Response:
            parse = partial(parse_filters, also=("format",))
            found = await asked(hub, self, request, parse, answer, "patterns")
            if not isinstance(found, tuple):
                return found
            rows, filters = export_rows(found[0]), found[1].as_json()
            return export_reply(self, request, "patterns", rows, RULE, filters)

    hub.app.page("/v1/patterns")(PatternsPage)
    hub.app.page("/v1/patterns/export")(PatternsExport)
