"""Plain text, one prompt per line (T2I-CompBench): LF or CRLF, final newline optional."""

from __future__ import annotations

from collections.abc import Iterator

from .base import ItemStream, Problem, Row, blank_line_problem


def numbered_lines(text: str) -> Iterator[tuple[int, str] | Problem]:
    """(line number, line) for each line; a Problem for blank lines between lines and for none at all.

    Lines end at LF, CRLF or a lone CR, never at other Unicode separators (U+2028…),
    which a prompt may hold.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are harmless
    if not lines:
        yield Problem(0, "file is empty")
    for number, line in enumerate(lines, start=1):
        yield (number, line) if line.strip() else blank_line_problem(number)


def parse(text: str) -> ItemStream:
    for item in numbered_lines(text):
        yield item if isinstance(item, Problem) else Row(line=item[0], text=item[1])
