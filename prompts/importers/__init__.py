"""Prompt file importers, one module per format, and format detection.

``parse(fmt=..., text=...)`` yields ``Row`` and ``Problem`` items in file order.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePath

from . import delimited, json_array, jsonl, txt
from .base import PROMPT_NAMES, ItemStream, Problem, Row

__all__ = ["FORMATS", "Problem", "Row", "format_detect", "parse"]

FORMATS = ("csv", "tsv", "json", "jsonl", "txt")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}
_HEADER_FIELD = re.compile(r"^[\w .&/()-]{1,60}$")


def _header_delimiter(first_line: str) -> str | None:
    """ "\\t" or "," when the first line is a header with a prompt column, else None."""
    line = first_line.rstrip("\r")
    for delimiter in ("\t", ","):
        if delimiter not in line:
            continue
        fields = [f.strip().strip('"') for f in line.split(delimiter)]
        if all(_HEADER_FIELD.match(f) for f in fields) and any(f.lower() in PROMPT_NAMES for f in fields):
            return delimiter
    return None


def format_detect(*, name: str, text: str) -> str:
    """The format from the file name's extension, checked against the content.

    Content decides when the extension is unknown (an upload named "prompts"), and
    corrects the usual mix-ups: a tab-separated ".csv", JSON Lines named ".json".
    """
    ext = PurePath(name).suffix.lower()
    start = text.lstrip()[:1]
    first_line = text.split("\n", 1)[0]
    by_ext = _EXTENSIONS.get(ext)
    if by_ext in ("json", "jsonl") or (by_ext is None and start in ("[", "{")):
        if start == "[":
            return "json"
        if start == "{" and by_ext == "json":
            try:
                json.loads(text)
                return "json"  # one object: the JSON importer says why that is not a suite
            except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
                return "jsonl"
        return by_ext or "jsonl"
    if by_ext == "txt":
        return "txt"  # one prompt per line, even one that looks like a header
    delimiter = _header_delimiter(first_line)
    if by_ext in ("csv", "tsv"):
        # A ".csv" that is really tab-separated (a common spreadsheet export) is read as TSV.
        if by_ext == "csv" and delimiter == "\t":
            return "tsv"
        if by_ext == "tsv" and delimiter == ",":
            return "csv"
        return by_ext
    if delimiter:
        return "tsv" if delimiter == "\t" else "csv"
    return "txt"


def parse(*, fmt: str, text: str) -> ItemStream:
    if fmt == "csv":
        return delimited.parse(text, delimiter=",")
    if fmt == "tsv":
        return delimited.parse(text, delimiter="\t")
    if fmt == "json":
        return json_array.parse(text)
    if fmt == "jsonl":
        return jsonl.parse(text)
    if fmt == "txt":
        return txt.parse(text)
    raise ValueError(f"unknown prompt file format {fmt!r}; choose one of {', '.join(FORMATS)}")
