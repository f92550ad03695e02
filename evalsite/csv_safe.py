"""CSV that a spreadsheet cannot execute: every CSV writer of the app goes through this module.

The OWASP rule for CSV (formula) injection: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is prefixed with a single quote, so Excel, LibreOffice and
Google Sheets show it as text instead of evaluating it; the rest of the text is kept as it is.
Numbers (ints, floats, and strings that are nothing but a number, like ``-0.53``) are left alone:
a number cannot be a formula, and analysis scripts must still read them as numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """One cell, neutralised when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_cell_read(value: str) -> str:
    """The inverse of ``csv_cell`` for a file read back (import_ratings reads the app's own ratings.csv)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START) and not _NUMBER.fullmatch(value[1:]):
        return value[1:]
    return value


def csv_row(row: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in row]


class SafeWriter:
    """``csv.writer`` with every cell of every row (the header too) passed through ``csv_cell``."""

    def __init__(self, out, **fmtparams):
        self._writer = csv.writer(out, **fmtparams)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(csv_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out, **fmtparams) -> SafeWriter:
    """The only way the app makes a CSV writer (see the module docstring)."""
    return SafeWriter(out, **fmtparams)
