"""JSON Lines: one object (or string) per line, e.g. GenEval's evaluation_metadata.jsonl."""

from __future__ import annotations

import json

from .base import ItemStream, Problem, row_from_json
from .txt import numbered_lines


def parse(text: str) -> ItemStream:
    for item in numbered_lines(text):
        if isinstance(item, Problem):
            yield item
            continue
        number, line = item
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Problem(number, f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield row_from_json(number, value)
