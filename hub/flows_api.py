"""``GET /v1/flows``: how people move between the place's services, for stewards (and
admins): per window, a partner-to-partner matrix of transitions, referrals by receiving
partner and what became of them, people seen by one service or several, and the median
days from a referral to the first contact at the receiving partner.

Like ``GET /v1/patterns`` it is a cut of the cells on ``hub.patterns`` as the patterns stage
published them after disclosure control (``hub.stages.pattern_flows``): a count is the
published one, ``null`` where suppressed and 0 where no cell is published (no people);
nothing is added up here. Filters: ``area`` (repeatable; a ward code, or ``place``, the
default), ``window=week|month`` and ``from``/``to`` as for the patterns; a window appears
for each area asked for that has a published flow in it. Medians are the whole place's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC
from functools import partial
from typing import Any

from faust.web import Request, Response, View

from hub.app import Hub
from hub.disclosure import BASE, RULE, THRESHOLD
from hub.models import PatternCell
from hub.patterns_api import (
    PLACE,
    BadFilter,
    Filters,
    asked,
    export_reply,
    in_range,
    parse_filters,
)
from hub.stages.pattern_flows import FLOW_MEASURES, MEDIAN, MEDIAN_RULE, REFERRAL_KINDS
from hub.stages.pattern_windows import Window

__all__ = ["flow_rows", "flows_answer", "install_flows_api", "parse_flow_filters"]

_FIELDS = ("area", "window", "from", "to")

Count = int | None  # a published count, None where suppressed


def parse_flow_filters(query: Mapping[str, list[str]], also: tuple[str, ...] = ()) -> Filters:
    """The filters in a query (the patterns' own, less domain and measure; ``also``: other
    names the endpoint takes); the whole place when no area is asked for. ``BadFilter``
    names the field and the rule."""
    if any(name not in (*_FIELDS, *also) for name in query):
        raise BadFilter(f"query: the filters of flows are {', '.join(_FIELDS)}")
    filters = parse_filters({k: v for k, v in query.items() if k not in also})
    return filters if filters.areas else replace(filters, areas=(PLACE,))


def flow_rows(cells: Mapping[str, PatternCell], filters: Filters) -> list[dict[str, object]]:
    """The published flow cells ``filters`` ask for, as the rows of an export: each with its
    window, as published (a median's days beside the referrals behind it)."""
    rows: list[dict[str, object]] = []
    for cell in sorted(cells.values(), key=_order):
        area = cell.area_code or PLACE
        if cell.measure in FLOW_MEASURES and in_range(cell, filters) and area in filters.areas:
            rows.append(
                {
                    "granularity": cell.granularity,
                    "window_start": cell.window_start.isoformat(),
                    "window_end": cell.window_end.isoformat(),
                    "measure": cell.measure,
                    "area_code": cell.area_code,
                    "combination_code": cell.combination_code,
                    "count": cell.count,
                    "suppressed": cell.suppressed,
                    "median_days": cell.median_days,
                }
            )
    return rows


def _order(cell: PatternCell) -> tuple[str, str, str, str, str]:
    start = cell.window_start.isoformat()
    return (cell.granularity, start, cell.area_code or "", cell.measure, cell.combination_code)


def flows_answer(cells: Mapping[str, PatternCell], filters: Filters) -> dict[str, Any]:
    """The answer to ``filters`` over the published ``cells`` (key → cell), in its shape
    (README, Flows for stewards)."""
    grouped: dict[tuple[str, str, str], list[PatternCell]] = defaultdict(list)
    for cell in cells.values():
        area = cell.area_code or PLACE
        if cell.measure in FLOW_MEASURES and in_range(cell, filters) and area in filters.areas:
            start = cell.window_start.isoformat()
            grouped[cell.granularity, start, area].append(cell)
    windows = [
        _window(Window(found[0].granularity, found[0].window_start.astimezone(UTC)), area, found)
        for (_, _, area), found in sorted(grouped.items())
    ]
    return {
        "disclosure": {
            "rule": RULE,
            "median_rule": MEDIAN_RULE,
            "threshold": THRESHOLD,
            "base": BASE,
        },
        "filters": {k: v for k, v in filters.as_json().items() if k in _FIELDS},
        "windows": windows,
    }


def _window(window: Window, area: str, cells: Iterable[PatternCell]) -> dict[str, Any]:
    by: dict[str, dict[str, PatternCell]] = defaultdict(dict)
    for cell in cells:
        by[cell.measure][cell.combination_code] = cell
    pairs = [tuple(c.split(">", 1)) for c in by["transition"]]
    partners = sorted({partner for pair in pairs for partner in pair})
    matrix = [[_count(by["transition"].get(f"{a}>{b}")) for b in partners] for a in partners]
    receivers = sorted({c.rsplit(".", 1)[0] for c in by["referral"]})
    referrals = [
        {"to": to} | {kind: _count(by["referral"].get(f"{to}.{kind}")) for kind in REFERRAL_KINDS}
        for to in receivers
    ]
    medians = []
    for pair, cell in sorted(by[MEDIAN].items()):
        from_, to = pair.split(">", 1)
        medians.append(
            {"from": from_, "to": to, "referrals": cell.count, "median_days": cell.median_days}
        )
    return {
        "granularity": window.granularity,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "area": None if area == PLACE else area,
        "partners": partners,
        "matrix": matrix,
        "referrals": referrals,
        "services": {kind: _count(by["services"].get(kind)) for kind in ("one", "several")},
        "median_days": medians,
    }


def _count(cell: PatternCell | None) -> Count:
    """A published cell's count (None: suppressed); 0 where none is published."""
    return 0 if cell is None else cell.count


def install_flows_api(hub: Hub) -> None:
    """Add ``GET /v1/flows`` (the pattern book is the patterns API's, stopped with it)."""

    class FlowsPage(View):
        """``GET /v1/flows``: the place's published flows, a matrix per window."""

        async def get(self, request: Request) -> Response:
            found = await asked(hub, self, request, parse_flow_filters, flows_answer, "flows")
            return self.json(found[0]) if isinstance(found, tuple) else found

    class FlowsExport(View):
        """``GET /v1/flows/export?format=csv|json``: the flow cells as a file, with the rule."""

        async def get(self, request: Request) -> Response:
            parse = partial(parse_flow_filters, also=("format",))
            found = await asked(hub, self, request, parse, flow_rows, "flows")
            if not isinstance(found, tuple):
                return found
            filters = {k: v for k, v in found[1].as_json().items() if k in _FIELDS}
            rule = f"{RULE} {MEDIAN_RULE}"
            return export_reply(self, request, "flows", found[0], rule, filters)

    hub.app.page("/v1/flows")(FlowsPage)
    hub.app.page("/v1/flows/export")(FlowsExport)
