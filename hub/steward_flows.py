"""What the stewards' page draws of the flows, from ``GET /v1/flows`` (``hub.flows_api``).

Pure functions from the answer's JSON to the series of the flow matrix heatmap (from a
partner, a row, to another, a column), the referrals by receiving partner (made, accepted,
completed) and their tables, for one window a steward chooses, so the unit tests check the
numbers with plain dicts and a browser test can compare the drawn charts with these. Like
``hub.steward_charts`` nothing here combines published counts (a sum of rounded counts is a
number disclosure control never saw); a suppressed count stays ``None`` and is drawn as
suppressed, not as a colour on the scale; 0 (nothing published) is drawn as nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REFERRAL_STEPS", "flow_choices", "flow_matrix", "flow_section", "flow_windows"]

Series = dict[str, Any]

GRANULARITIES = ("week", "month")
REFERRAL_STEPS = ("made", "accepted", "completed")  # the chart's bars; the table adds declined


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
        nothing |= {"referrals": [], "services": {}}
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
        "referrals": [dict(r) for r in window["referrals"]],
        "services": dict(window["services"]),
        "rules": rules,
    }


def flow_choices(flows: Mapping[str, Any]) -> list[dict[str, str]]:
    """The windows a steward can choose (the whole place's, weeks then months, newest
    first), as a form's options (value ``granularity|date``)."""
    return [
        {"value": f"{g}|{start}", "label": f"{g} starting {start}"}
        for g in GRANULARITIES
        for start in reversed(flow_windows(flows, g))
    ]


def flow_section(flows: Mapping[str, Any], chosen: str | None = None) -> Series:
    """The page's flows section: the window ``chosen`` names (``granularity|date``, one of
    ``flow_choices``; else the latest week, or month if no week has flows) as
    ``flow_matrix`` gives it, with the choices and the referrals' bar series (one per step,
    a value per receiving partner, each the published count)."""
    choices = flow_choices(flows)
    values = [c["value"] for c in choices]
    choice = chosen if chosen in values else (values[0] if values else None)
    granularity, start = choice.split("|", 1) if choice else ("week", None)
    section = flow_matrix(flows, granularity, start)
    receivers = [r["to"] for r in section["referrals"]]
    steps = [
        {"name": step, "values": [r[step] for r in section["referrals"]]} for step in REFERRAL_STEPS
    ]
    return section | {
        "granularity": granularity,
        "choice": choice,
        "choices": choices,
        "receivers": receivers,
        "referral_steps": steps,
    }
