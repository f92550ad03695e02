"""A JSON array of strings or of objects with "prompt" (ImageReward's benchmark-prompts.json).

Elements are decoded one by one so that each prompt and each problem keeps its line.
"""

from __future__ import annotations

import bisect

from .base import ItemStream, JsonInvalid, Problem, json_decode, row_from_json

_WS = " \t\r\n"


def parse(text: str) -> ItemStream:
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    pos = len(text) - len(text.lstrip(_WS))
    if pos >= len(text):
        yield Problem(0, "file is empty")
        return
    if text[pos] != "[":
        try:
            value, _ = json_decode(text, pos)
            found = "an object" if isinstance(value, dict) else "a single value"
        except JsonInvalid:
            found = "something else"
        yield Problem(
            line_at(pos), f'expected a JSON array of prompts (strings or objects with "prompt"), found {found}'
        )
        return
    pos += 1
    expect_value = True
    count = 0
    while True:
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        if pos >= len(text):
            yield Problem(line_at(pos), "not valid JSON: the array is not closed with ]")
            return
        if text[pos] == "]" and (count == 0 or not expect_value):
            break
        if not expect_value:
            if text[pos] != ",":
                yield Problem(line_at(pos), f"not valid JSON: expected ',' or ']' but found {text[pos]!r}")
                return
            pos += 1
            expect_value = True
            continue
        try:
            value, end = json_decode(text, pos)
        except JsonInvalid as exc:
            yield Problem(exc.lineno, exc.message)
            return
        yield row_from_json(line_at(pos), value)
        count += 1
        pos = end
        expect_value = False
    rest = text[pos + 1 :].strip(_WS)
    if rest:
        yield Problem(line_at(pos + 1 + text[pos + 1 :].index(rest[0])), "not valid JSON: extra data after the array")
    if count == 0:
        yield Problem(0, "the JSON array is empty")
