"""CSV bodies of the list routes, for people who take the numbers to a spreadsheet.

A list route answers `text/csv` when the request's `Accept` header prefers it to JSON:
one row per item of the list (assets, ranked assets, suggestions, points, ...), one
column per field of the item's model, in the model's order. Nested objects become
dotted columns (`lifetime.ctr`); lists of plain values are joined with `;`; anything
deeper is written as compact JSON. A text that a spreadsheet would run as a formula
(starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`.
The page's `next_cursor` travels in the `Next-Cursor` header.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

CONTENT_TYPE = "text/csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _quality(part: str) -> tuple[str, float]:
    media, *params = (p.strip() for p in part.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), q


def wants_csv(accept: str | None) -> bool:
    """Whether `Accept` prefers text/csv to application/json (ties: JSON)."""
    if not accept:
        return False
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        if part.strip():
            media, q = _quality(part)
            ranks[media] = max(q, ranks.get(media, 0.0))
    csv_q = ranks.get(CONTENT_TYPE, 0.0)
    json_q = max(ranks.get("application/json", 0.0), ranks.get("*/*", 0.0))
    return csv_q > 0 and csv_q > json_q


def _flatten(prefix: str, value: Any, row: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, row)
    else:
        row[prefix] = value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            return _text(";".join(str(v) for v in value))
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return _text(value)
    return str(value)


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_START) else value


def render(items: Iterable[BaseModel], item_model: type[BaseModel]) -> str:
    """The CSV text of `items` (header only when there are none)."""
    rows = []
    for item in items:
        row: dict[str, Any] = {}
        for name, value in item.model_dump(mode="json").items():
            if isinstance(value, Mapping) and name != "evidence":
                _flatten(name, value, row)
            elif isinstance(value, Mapping):
                row[name] = json.dumps(value, separators=(",", ":"), sort_keys=True)
            else:
                row[name] = value
        rows.append(row)
    columns: list[str] = list(rows[0]) if rows else list(item_model.model_fields)
    for row in rows:
        for name in row:
            if name not in columns:
                columns.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    return out.getvalue()
