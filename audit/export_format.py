"""The audit export's rows, as written by audit/export.py (whose docstring describes the format)
and read back by the offline verifier, audit/verify_export.py.

The standard library only, like audit/chain.py: an auditor runs the verifier without Django.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from audit.chain import HASHED_FIELDS, OPTIONAL_HASHED_FIELDS, canonical_json

FORMAT = "wavegate-audit-export"
VERSION = 1

# The kinds of record, in the order they come: one header, the checkpoints, the events, one end.
HEADER, CHECKPOINT, EVENT, END = "header", "checkpoint", "event", "end"
RECORDS = (HEADER, CHECKPOINT, EVENT, END)

# An export is complete (every event from its first to its last: the links can be checked) or
# filtered (only the events that match: there are gaps).
COMPLETE, FILTERED = "complete", "filtered"

# An event as exported: every field its hash covers, prev_hash just before the hash itself.
EVENT_FIELDS = (
    *(field for field in HASHED_FIELDS if field != "prev_hash"),
    *OPTIONAL_HASHED_FIELDS,
    "prev_hash",
    "hash",
)
CHECKPOINT_FIELDS = ("seq", "hash", "at", "signature", "key_id")
CSV_COLUMNS = ("record", *EVENT_FIELDS, "signature", "key_id", "detail")

INTEGER_FIELDS = frozenset({"seq", "actor_id", "cluster_id", "plan_id"})
# In CSV an empty cell of these means null; the other text fields are never null.
NULLABLE_FIELDS = frozenset({"actor_id", "actor_ip", "cluster_id", "plan_id"})
# Written in CSV as canonical JSON text (audit/chain.py), an empty cell meaning null.
JSON_FIELDS = frozenset({"before", "after", "detail"})

# A spreadsheet runs a cell that starts with one of these as a formula; such a cell is written
# with a ' in front, and so is one that starts with ' itself, so a reader removes exactly one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def to_cell(value: Any, field: str) -> str:
    if value is None:
        return ""
    if field in INTEGER_FIELDS and isinstance(value, int):
        return str(value)
    text = canonical_json(value).decode() if field in JSON_FIELDS else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def from_cell(text: str, field: str) -> Any:
    """The value a CSV cell holds; raises ValueError when it cannot be that field's."""
    if text.startswith("'"):
        text = text[1:]
    if field in INTEGER_FIELDS:
        if text == "" and field in NULLABLE_FIELDS:
            return None
        return int(text)
    if field in JSON_FIELDS:
        return json.loads(text) if text else None
    if text == "" and field in NULLABLE_FIELDS:
        return None
    return text


def csv_cells(record: str, values: Mapping[str, Any]) -> list[str]:
    """One CSV row: the record's kind, then its values under CSV_COLUMNS (missing ones empty)."""
    return [record, *(to_cell(values.get(column), column) for column in CSV_COLUMNS[1:])]


def from_csv_cells(cells: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The kind and the values of a CSV row (only the fields of its kind), as csv_cells wrote
    them; raises ValueError naming what is wrong."""
    if len(cells) != len(CSV_COLUMNS):
        raise ValueError(f"it has {len(cells)} columns, not {len(CSV_COLUMNS)}")
    record = cells[0]
    by_column = dict(zip(CSV_COLUMNS, cells, strict=True))
    if record == EVENT:
        fields: Sequence[str] = EVENT_FIELDS
    elif record == CHECKPOINT:
        fields = CHECKPOINT_FIELDS
    elif record in (HEADER, END):
        detail = from_cell(by_column["detail"], "detail")
        if not isinstance(detail, dict):
            raise ValueError("its detail is not a JSON object")
        return record, detail
    else:
        raise ValueError(f"{record!r} is not a kind of record ({', '.join(RECORDS)})")
    values = {}
    for field in fields:
        try:
            values[field] = from_cell(by_column[field], field)
        except ValueError as error:
            raise ValueError(f"its {field} cannot be read ({error})") from error
    return record, values


def json_line(record: str, values: Mapping[str, Any]) -> str:
    """One JSON line (its newline included): {"record": kind, **values}."""
    return (
        json.dumps(
            {"record": record, **values},
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        )
        + "\n"
    )


def from_json_line(line: str) -> tuple[str, dict[str, Any]]:
    """The kind and the values of a JSON line; raises ValueError naming what is wrong."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object")
    record = data.pop("record", None)
    if record not in RECORDS:
        raise ValueError(f"{record!r} is not a kind of record ({', '.join(RECORDS)})")
    if record == EVENT:
        for field in OPTIONAL_HASHED_FIELDS:
            data.setdefault(field, None)
        _require(data, EVENT_FIELDS)
    elif record == CHECKPOINT:
        _require(data, CHECKPOINT_FIELDS)
    return record, data


def _require(values: Mapping[str, Any], fields: Sequence[str]) -> None:
    missing = [field for field in fields if field not in values]
    if missing:
        raise ValueError(f"it has no {', '.join(missing)}")
    for field in INTEGER_FIELDS & set(fields):
        value = values[field]
        if not (isinstance(value, int) and not isinstance(value, bool)) and not (
            value is None and field in NULLABLE_FIELDS
        ):
            raise ValueError(f"its {field} is not a whole number")
