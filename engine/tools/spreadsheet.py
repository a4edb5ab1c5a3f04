"""CSV that a spreadsheet opens as it is meant: UTF-8 with a BOM, the delimiter a French
spreadsheet expects when asked, and no cell run as a formula (their text comes from upstream
messages, so a cell that would start one is prefixed with ')."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

DELIMITERS = (",", ";", "\t")  # ';' for French spreadsheets
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Row = dict[str, Any]


def csv_bytes(rows: Iterable[Row], columns: Sequence[str], delimiter: str = ",") -> bytes:
    """Rows as CSV in memory (UTF-8 with a BOM, formula-safe cells)."""
    if delimiter not in DELIMITERS:
        raise ValueError(f"report delimiter {delimiter!r}")
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=delimiter)
    writer.writerow(columns)
    writer.writerows([safe_cell(row[column]) for column in columns] for row in rows)
    return text.getvalue().encode("utf-8-sig")


def safe_cell(value: Any) -> Any:
    """A cell's value, kept text when a spreadsheet would run it as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
