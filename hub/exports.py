"""Exports of disclosure-controlled tables: the CSV and JSON a steward takes away.

A file outlives the page it came from, so it carries its own terms: the disclosure rule
(a ``disclosure_rule`` column on every CSV row, so the CSV stays one plain table for any
tool; a ``disclosure`` object in the JSON) and the window columns of its rows. The export
is also the last line of defence: it checks each row's ``count`` again and refuses the
whole file if any could identify someone, whatever produced the rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date

from hub.disclosure import BASE, THRESHOLD

__all__ = ["COUNT", "RULE_COLUMN", "SUPPRESSED", "as_csv", "as_json"]

COUNT = "count"
SUPPRESSED = "suppressed"
RULE_COLUMN = "disclosure_rule"


def as_csv(rows: Sequence[Mapping[str, object]], rule: str) -> str:
    """The rows as CSV: their columns in first-seen order, then the rule on every row.

    Raises ``ValueError`` (naming the row, field and rule) if the rule is empty or a row
    is not safe to publish (see ``as_json``).
    """
    _check(rows, rule)
    columns = list(dict.fromkeys(key for row in rows for key in row if key != RULE_COLUMN))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*columns, RULE_COLUMN])
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {**{key: _csv_cell(row[key]) for key in columns if key in row}, RULE_COLUMN: rule}
        )
    return buffer.getvalue()


def as_json(
    rows: Sequence[Mapping[str, object]], rule: str, filters: Mapping[str, object]
) -> dict[str, object]:
    """The rows as a JSON-ready object: the rule with its threshold and rounding base,
    the filters that chose the rows, and the rows (dates as ISO 8601 text).

    Raises ``ValueError`` (naming the row, field and rule) if the rule is empty, or a
    row has no ``count``, a count of 1 to 4, a count not rounded to the base, a count
    on a row marked ``suppressed``, or no count on a row not marked so.
    """
    _check(rows, rule)
    return {
        "disclosure": {"rule": rule, "threshold": THRESHOLD, "base": BASE},
        "filters": {key: _json_value(value) for key, value in filters.items()},
        "rows": [{key: _json_value(value) for key, value in row.items()} for row in rows],
    }


def _check(rows: Sequence[Mapping[str, object]], rule: str) -> None:
    """Refuse an export without its rule, or with any row that is not safe to publish."""
    if not rule.strip():
        raise ValueError("rule: an export states the disclosure rule its counts went through")
    for index, row in enumerate(rows):
        problem = _unsafe(row)
        if problem:
            raise ValueError(f"row {index}: {problem}")


def _unsafe(row: Mapping[str, object]) -> str | None:
    """What makes one row unsafe to publish, as field and rule; None if it is safe."""
    if COUNT not in row:
        return f"{COUNT}: every exported row has a count (null when suppressed)"
    count = row[COUNT]
    suppressed = row.get(SUPPRESSED, False)
    if not isinstance(suppressed, bool):
        return f"{SUPPRESSED}: must be true or false"
    if count is None:
        return None if suppressed else f"{COUNT}: a row without a count must be suppressed"
    if suppressed:
        return f"{COUNT}: a suppressed row carries no count"
    if not isinstance(count, int) or isinstance(count, bool):
        return f"{COUNT}: must be a whole number"
    if count < 0:
        return f"{COUNT}: a count of people is never negative"
    if count < THRESHOLD and count != 0:
        return f"{COUNT}: counts under {THRESHOLD} are suppressed, never exported"
    if count % BASE:
        return f"{COUNT}: counts are rounded to a multiple of {BASE}"
    return None


def _csv_cell(value: object) -> object:
    """A value as a CSV cell: dates in ISO 8601, booleans as JSON spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json_value(value)


def _json_value(value: object) -> object:
    """Dates and times (windows) in ISO 8601, which JSON and spreadsheets both read."""
    return value.isoformat() if isinstance(value, date) else value
