"""What the stewards' page draws, from numbers that are already disclosure-controlled.

Pure functions from the JSON ``GET /v1/patterns`` answers (``hub.patterns_api``) and the
partners' books to the series the page's charts and their tables show, so the unit tests
check every chart's numbers with plain dicts and the browser test compares the drawn
charts with these. Nothing here adds, subtracts or otherwise combines published cells: a
sum of rounded cells is a new number that disclosure control never saw, and differencing
such sums is how a small cell is recovered. A suppressed cell stays ``None`` all the way
to the page, where it is shown as "suppressed", never as a number.

A week with published cells but none for a domain means nobody (0 is published by
omission); a week with no cells at all is not drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PLACE_LABEL",
    "SILENT_AFTER_S",
    "co_occurrence",
    "health",
    "pattern_choices",
    "response_chart",
    "trends",
]

PLACE_LABEL = "Whole place"  # the label of a cell whose area_code is null
SILENT_AFTER_S = 6 * 3600.0  # as deploy/prometheus/rules.yml's PlacehubPartnerSilent
HEALTH_BOOKS = ("received", "in_view", "held_in_quarantine", "dead_lettered")

Cell = Mapping[str, Any]
Series = dict[str, Any]


def _cells(patterns: Mapping[str, Any], measure: str, granularity: str) -> list[Cell]:
    return [
        c
        for c in patterns.get("cells", [])
        if c["measure"] == measure and c["granularity"] == granularity
    ]


def _published(cell: Cell) -> int | None:
    """A cell's published count: None when suppressed (whatever else the cell says)."""
    return None if cell["suppressed"] else cell["count"]


def _day(iso: str) -> str:
    """An ISO timestamp's date (``2026-11-23``): week and month starts are midnights."""
    return iso[:10]


def trends(patterns: Mapping[str, Any], granularity: str = "week") -> list[Series]:
    """People by need domain, per area, window by window: one chart per area (the whole
    place first, then areas by code), one line per domain, ``None`` where suppressed."""
    cells = _cells(patterns, "domain", granularity)
    windows = sorted({_day(c["window_start"]) for c in cells})
    areas: dict[str | None, dict[str, dict[str, int | None]]] = {}
    for cell in cells:
        by_domain = areas.setdefault(cell["area_code"], {})
        by_domain.setdefault(cell["combination_code"], {})[_day(cell["window_start"])] = _published(
            cell
        )
    charts = []
    for area in sorted(areas, key=lambda a: (a is not None, a or "")):
        lines = [
            {"name": domain, "values": [counts.get(w, 0) for w in windows]}
            for domain, counts in sorted(areas[area].items())
        ]
        label = PLACE_LABEL if area is None else area
        charts.append({"area_code": area, "label": label, "windows": windows, "lines": lines})
    return charts


def co_occurrence(patterns: Mapping[str, Any], granularity: str = "week") -> Series:
    """Pairs of need domains within one person, for the whole place in the latest window
    that has any: a symmetric domain-by-domain matrix as ``[x, y, count]`` triples for the
    heatmap, with the suppressed pairs apart (drawn as such, not as a colour on the scale),
    and as rows (``matrix[y][x]``, ``None`` where suppressed) for its table."""
    cells = [c for c in _cells(patterns, "co_occurrence", granularity) if c["area_code"] is None]
    if not cells:
        return {"window_start": None, "domains": [], "values": [], "suppressed": [], "matrix": []}
    latest = max(c["window_start"] for c in cells)
    pairs = {
        tuple(c["combination_code"].split("+")): _published(c)
        for c in cells
        if c["window_start"] == latest
    }
    domains = sorted({d for pair in pairs for d in pair})
    index = {domain: n for n, domain in enumerate(domains)}
    values: list[list[int]] = []
    suppressed: list[list[int]] = []
    matrix: list[list[int | None]] = [[0] * len(domains) for _ in domains]  # [y][x]
    for (first, second), count in sorted(pairs.items()):
        for x, y in ((first, second), (second, first)):
            matrix[index[y]][index[x]] = count
            if count is None:
                suppressed.append([index[x], index[y]])
            else:
                values.append([index[x], index[y], count])
    return {
        "window_start": _day(latest),
        "domains": domains,
        "values": values,
        "suppressed": suppressed,
        "matrix": matrix,
    }


def response_chart(evaluated: Mapping[str, Any]) -> Series:
    """A response's before/after chart from its evaluation (``hub.responses.evaluation``):
    one line per area of the response, then one per comparison area, then the whole place,
    each the published cells as they are; the window holding its first day is marked."""
    response = evaluated["response"]
    lines = [
        {"name": f"{line['area_code']} (with the response)", "role": "response",
         "values": line["values"]}
        for line in evaluated["areas"]
    ] + [
        {"name": f"{line['area_code']} (comparison)", "role": "comparison",
         "values": line["values"]}
        for line in evaluated["comparison"]
    ]  # fmt: skip
    lines.append({"name": PLACE_LABEL, "role": "place", "values": evaluated["place"]["values"]})
    pattern = evaluated["pattern"]
    about = f"{pattern['measure']} {pattern['combination_code']} by {pattern['granularity']}"
    return {
        "response_id": response["response_id"],
        "title": response["title"],
        "pattern": about,
        "windows": evaluated["windows"],
        "phases": evaluated["phases"],
        "from_window": evaluated["from_window"],
        "lines": lines,
    }


def pattern_choices(patterns: Mapping[str, Any]) -> list[dict[str, str]]:
    """The patterns a response can address: every (window, measure, combination) with a
    published cell, as a form's options (value ``granularity|measure|combination``)."""
    found = {
        (c["granularity"], c["measure"], c["combination_code"]) for c in patterns.get("cells", [])
    }
    return [
        {"value": "|".join(key), "label": f"{key[1]} {key[2]} by {key[0]}"} for key in sorted(found)
    ]


def health(
    books: Mapping[str, Mapping[str, int]],
    last_event_at: Mapping[str, float],
    now: float,
    disclose: Callable[[int], int | None],
) -> list[Series]:
    """Each partner's freshness and books as a steward sees them: the time of its last
    event (ISO, minutes, UTC), whether it has gone silent, and the books' counts each put
    through ``disclose`` (records of people: the page shows no count under the rule)."""
    rows = []
    for partner in sorted(books):
        at = last_event_at.get(partner)
        rows.append(
            {
                "partner": partner,
                "last_event_at": _minute(at),
                "silent": at is None or now - at > SILENT_AFTER_S,
                **{book: _disclosed(books[partner][book], disclose) for book in HEALTH_BOOKS},
            }
        )
    return rows


def _disclosed(count: int, disclose: Callable[[int], int | None]) -> int | None:
    """0 as 0 (nothing to protect), anything else as the rule publishes it."""
    return 0 if count == 0 else disclose(count)


def _minute(at: float | None) -> str | None:
    """Unix time as ``2026-11-23T09:05Z``: zero-padded, so no lone small number shows."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
