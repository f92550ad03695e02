"""Every kind of bad input: its PATH:LINE: message, and a database left as it was."""

from __future__ import annotations

import json

import pytest

from prompts.models import Prompt, PromptSuite
from prompts.services import PromptFileInvalid, prompt_suite_import
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


@pytest.fixture
def existing():
    """A suite already in the database; every failed import must leave exactly this."""
    prompt = PromptFactory(suite__name="existing", text="kept")
    return prompt.suite


def _problems(name: str, data: bytes | str, **kwargs) -> list[str]:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with pytest.raises(PromptFileInvalid) as info:
        prompt_suite_import(path_or_name=name, data=data, suite_name=kwargs.pop("suite", "new"), **kwargs)
    return info.value.lines(name)


def _unchanged(existing) -> None:
    assert list(PromptSuite.objects.values_list("name", flat=True)) == ["existing"]
    assert list(Prompt.objects.values_list("suite__name", "text")) == [("existing", "kept")]


CASES = [
    # (id, file name, data, expected lines)
    ("empty", "p.txt", b"", ["p.txt:0: file is empty"]),
    ("whitespace-only", "p.csv", b" \r\n\n\t\n", ["p.csv:0: file is empty"]),
    ("bom-only", "p.json", b"\xef\xbb\xbf", ["p.json:0: file is empty"]),
    ("header-only", "p.csv", b"prompt,category\n", ["p.csv:0: file has a header but no prompts"]),
    (
        "header-without-prompt-column",
        "p.csv",
        "caption,category\na cat,animals\n",
        [
            "p.csv:1: no prompt column in the CSV header (found 'caption', 'category'); "
            "name one column prompt, Prompts or text"
        ],
    ),
    ("empty-prompt-csv", "p.csv", 'prompt,category\n"  ",x\nok,y\n', ["p.csv:2: empty prompt"]),
    (
        "blank-line-txt",
        "p.txt",
        "a\n\nb\n",
        ["p.txt:2: blank line: every line must hold a prompt (remove it)"],
    ),
    ("empty-prompt-json", "p.json", '["a", ""]', ["p.json:1: empty prompt"]),
    (
        "csv-wrong-field-count",
        "p.csv",
        "prompt,category\na,b\nc,d,e\nf\n",
        [
            "p.csv:3: expected 2 CSV fields (prompt, category), found 3",
            "p.csv:4: expected 2 CSV fields (prompt, category), found 1",
        ],
    ),
    (
        "tsv-wrong-field-count",
        "p.tsv",
        "Prompt\tCategory\na\tb\tc\n",
        ["p.tsv:2: expected 2 TSV fields (Prompt, Category), found 3"],
    ),
    (
        "csv-bad-quoting",
        "p.csv",
        'prompt,category\n"a "b" c",x\n',
        ["p.csv:2: row does not parse: ',' expected after '\"'"],
    ),
    (
        "jsonl-bad-line",
        "p.jsonl",
        '{"prompt": "a"}\n{"prompt": "b",}\n{"prompt": "c"}\n',
        ["p.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes (column 16)"],
    ),
    (
        "jsonl-no-prompt-key",
        "p.jsonl",
        '{"caption": "a"}\n',
        ['p.jsonl:1: no "prompt" field (found: caption); name it prompt, Prompts or text'],
    ),
    (
        "json-syntax",
        "p.json",
        '[\n  "a",\n  "b"\n  "c"\n]',
        ["p.json:4: not valid JSON: expected ',' or ']' but found '\"'"],
    ),
    ("json-unclosed", "p.json", '[\n "a",\n "b"\n', ["p.json:4: not valid JSON: the array is not closed with ]"]),
    (
        "json-object-not-array",
        "p.json",
        '{"prompts": ["a"]}',
        ['p.json:1: expected a JSON array of prompts (strings or objects with "prompt"), found an object'],
    ),
    ("json-number-prompt", "p.json", '[{"prompt": 42}]', ["p.json:1: the prompt must be text, found a number"]),
    (
        "json-element-not-prompt",
        "p.json",
        "[1.5]",
        ['p.json:1: expected a string or an object with a "prompt" key, found a number'],
    ),
    ("json-empty-array", "p.json", "[ ]", ["p.json:0: the JSON array is empty"]),
    (
        "not-utf8",
        "p.txt",
        b"good\ncaf" + b"\xe9 au lait\nfine\n\xff\n",
        [
            "p.txt:2: bytes that are not UTF-8 (0xE9 at byte 4); save the file as UTF-8",
            "p.txt:4: bytes that are not UTF-8 (0xFF at byte 1); save the file as UTF-8",
        ],
    ),
    ("utf16", "p.txt", "a cat\n".encode("utf-16"), ["p.txt:0: file is UTF-16 text; save it as UTF-8"]),
    (
        "binary-nul",
        "p.txt",
        b"abc\x00\x01\x02def\n",
        ["p.txt:0: binary file (control bytes such as NUL), not a text prompt file"],
    ),
    (
        "binary-png",
        "p.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        ["p.csv:0: binary file (a PNG image), not a text prompt file"],
    ),
    (
        "xlsx",
        "p.csv",
        b"PK\x03\x04\x14\x00\x06\x00",
        ["p.csv:0: binary file (a ZIP archive (an .xlsx workbook? export it as CSV)), not a text prompt file"],
    ),
    (
        "category-too-long",
        "p.csv",
        "prompt,category\na," + "c" * 101 + "\n",
        ["p.csv:2: category is 101 characters, over the 100 limit"],
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_lists_problems_and_imports_nothing(existing, name, data, expected):
    assert _problems(name, data) == expected
    _unchanged(existing)


def test_prompt_over_4000_characters(existing, settings):
    assert settings.PROMPT_MAX_CHARS == 4000
    data = "short\n" + "y" * 4001 + "\n"
    assert _problems("p.txt", data) == ["p.txt:2: prompt is 4,001 characters, over the 4,000 limit"]
    _unchanged(existing)


def test_file_over_20_mb(existing, settings):
    assert settings.PROMPT_FILE_MAX_BYTES == 20 * MB
    data = b"a prompt line\n" * (20 * MB // 14 + 1)
    assert len(data) > 20 * MB
    assert _problems("big.txt", data) == [
        f"big.txt:0: file is 20.0 MB ({len(data):,} bytes), over the limit of 20.0 MB (20,971,520 bytes)"
    ]
    _unchanged(existing)


def test_file_over_size_reported_with_real_size_when_cut(existing):
    """The command and the page read one byte past the limit and pass the real size."""
    assert _problems("big.txt", b"x", size=30 * MB) == [
        "big.txt:0: file is 30.0 MB (31,457,280 bytes), over the limit of 20.0 MB (20,971,520 bytes)"
    ]
    _unchanged(existing)


def test_file_over_100000_rows(existing, settings):
    assert settings.PROMPT_FILE_MAX_ROWS == 100_000
    data = "".join(f"prompt {i}\n" for i in range(100_001))
    assert _problems("many.txt", data) == ["many.txt:100001: more than 100,000 prompts (the row limit); split the file"]
    _unchanged(existing)


def test_row_limit_counts_data_rows_not_the_header(existing, settings):
    settings.PROMPT_FILE_MAX_ROWS = 2
    assert prompt_suite_import(path_or_name="p.csv", data=b"prompt\na\nb\n", suite_name="ok").count == 2
    assert _problems("p.csv", "prompt\na\nb\nc\n") == ["p.csv:4: more than 2 prompts (the row limit); split the file"]


def test_suite_name_taken_is_a_clear_error(existing):
    assert _problems("p.txt", "a\n", suite="existing") == [
        "p.txt:0: suite 'existing' already exists (1 prompts); choose another name or replace it"
    ]
    _unchanged(existing)


def test_replace_refused_once_sweeps_use_the_suite(existing):
    from tests.factories import SweepFactory

    SweepFactory(suite=existing)
    assert _problems("p.txt", "new text\n", suite="existing", replace=True) == [
        "p.txt:0: suite 'existing' is used by 1 sweep(s); it can't be replaced, import under a new name"
    ]
    _unchanged(existing)


def test_all_problems_listed_together_with_duplicate_warnings(existing):
    data = json.dumps(["a", "a", "", "x" * 4001]).replace(", ", ",\n")
    with pytest.raises(PromptFileInvalid) as info:
        prompt_suite_import(path_or_name="p.json", data=data.encode(), suite_name="existing")
    assert info.value.lines("p.json") == [
        "p.json:3: empty prompt",
        "p.json:4: prompt is 4,001 characters, over the 4,000 limit",
        "p.json:0: suite 'existing' already exists (1 prompts); choose another name or replace it",
    ]
    assert [w.format("p.json") for w in info.value.warnings] == [
        "p.json:2: warning: duplicate of the prompt on line 1; kept once"
    ]
    _unchanged(existing)


def test_long_problem_lists_are_cut_with_a_count(existing):
    lines = _problems("p.csv", "prompt,c\n" + "a,b,c\n" * 250)
    assert len(lines) == 201 and lines[-1] == "p.csv:0: … and 50 more problems"


def test_failure_inside_the_write_rolls_everything_back(existing, monkeypatch):
    """One transaction: a database error after the suite row is created leaves no suite behind."""
    from django.db import DatabaseError

    from prompts import services

    def broken_bulk_create(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(services.Prompt.objects, "bulk_create", broken_bulk_create)
    with pytest.raises(DatabaseError):
        prompt_suite_import(path_or_name="p.txt", data=b"a\nb\n", suite_name="new")
    _unchanged(existing)
