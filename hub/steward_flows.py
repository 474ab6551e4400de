"""What the stewards' page draws of the flows, from ``GET /v1/flows`` (``hub.flows_api``).

Pure functions from the answer's JSON to the series of the flow matrix heatmap (from a
partner, a row, to another, a column) and its table, so the unit tests check the numbers
with plain dicts and a browser test can compare the drawn chart with these. Like
``hub.steward_charts`` nothing here combines published counts (a sum of rounded counts is a
number disclosure control never saw); a suppressed count stays ``None`` and is drawn as
suppressed, not as a colour on the scale; 0 (nothing published) is drawn as nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["flow_matrix", "flow_windows"]

Series = dict[str, Any]


def flow_windows(flows: Mapping[str, Any], granularity: str = "week") -> list[str]:
    """The window starts (dates) of the whole place's flows of ``granularity``, oldest
    first: the choices of the chart's window."""
    return sorted(
        {
            w["window_start"][:10]
            for w in flows.get("windows", [])
            if w["granularity"] == granularity and w["area"] is None
        }
    )


def flow_matrix(
    flows: Mapping[str, Any], granularity: str = "week", window_start: str | None = None
) -> Series:
    """The whole place's transitions in one window (the latest of ``granularity`` unless
    ``window_start`` names one) as the heatmap's ``[x, y, count]`` triples (x the partner
    the people went to, y the one they came from), the suppressed pairs apart, the rows
    for the table (``matrix[y][x]``, ``None`` where suppressed), the referrals' medians
    and the rules to state beside the chart."""
    disclosure = flows.get("disclosure", {})
    rules = [r for r in (disclosure.get("rule"), disclosure.get("median_rule")) if r]
    starts = flow_windows(flows, granularity)
    chosen = window_start or (starts[-1] if starts else None)
    window = next(
        (
            w
            for w in flows.get("windows", [])
            if w["granularity"] == granularity
            and w["area"] is None
            and w["window_start"][:10] == chosen
        ),
        None,
    )
    if window is None:
        nothing: Series = {"partners": [], "values": [], "suppressed": [], "matrix": []}
        return nothing | {"window_start": None, "medians": [], "rules": rules}
    values: list[list[int]] = []
    suppressed: list[list[int]] = []
    for y, row in enumerate(window["matrix"]):
        for x, count in enumerate(row):
            if count is None:
                suppressed.append([x, y])
            elif count:
                values.append([x, y, count])
    medians = [
        {"label": f"{m['from']} → {m['to']}", "days": m["median_days"], "referrals": m["referrals"]}
        for m in window["median_days"]
    ]
    return {
        "window_start": chosen,
        "partners": list(window["partners"]),
        "values": values,
        "suppressed": suppressed,
        "matrix": [list(row) for row in window["matrix"]],
        "medians": medians,
        "rules": rules,
    }
