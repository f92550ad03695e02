"""JSON Lines: one object (or string) per line, e.g. GenEval's evaluation_metadata.jsonl."""

from __future__ import annotations

from .base import ItemStream, JsonInvalid, Problem, json_decode, row_from_json
from .txt import numbered_lines


def parse(text: str) -> ItemStream:
    for item in numbered_lines(text):
        if isinstance(item, Problem):
            yield item
            continue
        number, line = item
        try:
            value, end = json_decode(line)
        except JsonInvalid as exc:
            yield Problem(number, exc.message)
            continue
        if line[end:].strip():
            yield Problem(number, f"not valid JSON: extra data after the value (column {end + 1})")
            continue
        yield row_from_json(number, value)
