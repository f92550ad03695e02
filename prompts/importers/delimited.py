"""CSV and TSV with a header row (DrawBench, PartiPrompts, spreadsheets exported as CSV).

TSV is read with quoting off (csv.QUOTE_NONE): PartiPrompts.tsv has prompts that
start with a quote, ``"G I G G L E" painted…``, which standard quoting would eat.
CSV uses standard quoting: DrawBench quotes prompts that contain commas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from .base import ItemStream, Problem, blank_line_problem, prompt_key, row_from_mapping


def delimited_records(text: str, *, delimiter: str) -> list[tuple[int, list[str] | Problem]]:
    """(first line, fields) per record, or (line, Problem) for a record that does not parse; trailing
    blank lines are dropped (harmless; blank lines between rows are not). A tab delimiter reads with
    quoting off, any other with standard quoting (see above).

    Also read by ratings.services.imports (ratings CSV/TSV files).
    """
    records = list(_records(text, delimiter=delimiter))
    while records and records[-1][1] == []:
        records.pop()
    return records


def _records(text: str, *, delimiter: str) -> Iterator[tuple[int, list[str] | Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield previous_end + 1, Problem(previous_end + 1, f"row does not parse: {exc}")
            previous_end = reader.line_num
            continue
        yield previous_end + 1, fields
        previous_end = reader.line_num


def parse(text: str, *, delimiter: str) -> ItemStream:
    records = delimited_records(text, delimiter=delimiter)
    if not records:
        yield Problem(0, "file is empty")
        return
    first_line, header = records[0]
    if isinstance(header, Problem):
        yield header
        return
    names = [h.strip() for h in header]
    kind = "TSV" if delimiter == "\t" else "CSV"
    if prompt_key(names) is None:
        found = ", ".join(repr(n) for n in names)
        yield Problem(
            first_line,
            f"no prompt column in the {kind} header (found {found}); name one column prompt, Prompts or text",
        )
        return
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            yield Problem(first_line, f"column {name!r} appears twice in the header")
            return
        seen.add(name.lower())
    if len(records) == 1:
        yield Problem(0, "file has a header but no prompts")
        return
    for line, fields in records[1:]:
        if isinstance(fields, Problem):
            yield fields
        elif fields == []:
            yield blank_line_problem(line)
        elif len(fields) != len(names):
            yield Problem(line, f"expected {len(names)} {kind} fields ({', '.join(names)}), found {len(fields)}")
        else:
            yield row_from_mapping(line, dict(zip(names, fields, strict=True)))
