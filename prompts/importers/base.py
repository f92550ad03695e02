"""What every format's importer yields: rows with a source line, or problems at a line.

Importers only parse; limits, empty prompts, duplicates and derived fields are
checked once, for every format, in ``prompts.services``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Column/key names, compared case-insensitively. The first prompt name present wins.
PROMPT_NAMES = ("prompt", "prompts", "text")
KNOWN_FIELDS = ("category", "challenge", "note", "expected_text", "language")


@dataclass
class Row:
    line: int
    text: str
    category: str = ""
    challenge: str = ""
    tags: list[str] = field(default_factory=list)
    note: str = ""
    expected_text: str | None = None  # None: the file does not say; derived from the prompt
    language: str | None = None  # None: the file does not say; guessed from the script
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    line: int  # 0 means the whole file
    message: str
    warning: bool = False

    def format(self, path: str) -> str:
        prefix = "warning: " if self.warning else ""
        return f"{path}:{self.line}: {prefix}{self.message}"


Item = Row | Problem
ItemStream = Iterator[Item]


def prompt_key(names: list[str]) -> str | None:
    """The name among ``names`` that holds the prompt, or None."""
    lowered = {n.strip().lower(): n for n in names}
    for candidate in PROMPT_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    return None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def row_from_mapping(line: int, obj: Mapping[str, Any]) -> Item:
    """One record (a CSV row by header, or a JSON object) as a Row; unknown keys become metadata."""
    key = prompt_key(list(obj))
    if key is None:
        keys = ", ".join(obj) or "none"
        return Problem(line, f'no "prompt" field (found: {keys}); name it prompt, Prompts or text')
    text = obj[key]
    if not isinstance(text, str):
        return Problem(line, f"the prompt must be text, found {_json_type(text)}")
    row = Row(line=line, text=text)
    rest: dict[str, Any] = {}
    for name, value in obj.items():
        if name == key:
            continue
        lname = name.strip().lower()
        if lname in KNOWN_FIELDS and value is not None:
            if not isinstance(value, str):
                return Problem(line, f'"{name}" must be text, found {_json_type(value)}')
            setattr(row, lname, value.strip())
        elif lname == "tags" and isinstance(value, list) and all(isinstance(t, str) for t in value):
            row.tags = [t.strip() for t in value if t.strip()]
        else:
            rest[name] = value
    # GenEval's "tag" is its category.
    if not row.category:
        for name in list(rest):
            if name.strip().lower() == "tag" and isinstance(rest[name], str):
                row.category = rest.pop(name).strip()
                break
    row.metadata = rest
    return row


MAX_JSON_DEPTH = 32  # a prompt's metadata is a few levels deep; PostgreSQL's jsonb and Python's decoder are not unbounded


class JsonInvalid(ValueError):
    """A JSON value we will not store, with where it starts (1-based line in the text)."""

    def __init__(self, message: str, lineno: int):
        super().__init__(message)
        self.message, self.lineno = message, lineno


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use null or a number)")


def _finite_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"the number {raw[:30]} is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def json_decode(text: str, pos: int = 0) -> tuple[Any, int]:
    """One JSON value at ``pos`` (strict: no NaN/Infinity), checked as storable; raises JsonInvalid.

    Every importer that reads JSON goes through here, so deep nesting, NaN/Infinity, NUL and
    lone surrogates become a line-numbered problem instead of a RecursionError or a database error.
    """
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise JsonInvalid(f"not valid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise JsonInvalid(f"not valid JSON here: nested deeper than {MAX_JSON_DEPTH} levels", _line_of(text, pos)) from None
    except ValueError as exc:  # NaN, Infinity, 1e999
        raise JsonInvalid(f"not valid JSON: {exc}", _line_of(text, pos)) from None
    problem = json_value_problem(value)
    if problem:
        raise JsonInvalid(problem, _line_of(text, pos))
    return value, end


def _text_problem(s: str) -> str:
    if "\x00" in s:
        return "contains a NUL character (\\u0000), which a prompt cannot hold"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate \\u{ord(s[exc.start]):04x}, which is not a character"
    return ""


def json_value_problem(value: Any) -> str:
    """Why a decoded JSON value cannot be stored (too deep, NUL, lone surrogate), or ""."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return ""


def row_from_json(line: int, value: Any) -> Item:
    """A JSON value that stands for one prompt: a string, or an object with "prompt"."""
    if isinstance(value, str):
        return Row(line=line, text=value)
    if isinstance(value, dict):
        return row_from_mapping(line, value)
    return Problem(line, f'expected a string or an object with a "prompt" key, found {_json_type(value)}')


def blank_line_problem(line: int) -> Problem:
    return Problem(line, "blank line: every line must hold a prompt (remove it)")
