"""prompt_suite_import on each format's details: detection, whitespace, encodings, fields."""

from __future__ import annotations

import json

import pytest

from prompts.models import Prompt, PromptSuite
from prompts.services import prompt_suite_import

pytestmark = pytest.mark.django_db


def _import(name: str, data: bytes | str, fmt: str = "auto", suite: str = "s"):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return prompt_suite_import(path_or_name=name, data=data, suite_name=suite, fmt=fmt)


def _texts(suite: str = "s") -> list[str]:
    return list(Prompt.objects.filter(suite__name=suite).order_by("position").values_list("text", flat=True))


@pytest.mark.parametrize(
    "data",
    [
        "one\ntwo\nthree",
        "one\ntwo\nthree\n",
        "one\r\ntwo\r\nthree",
        "one\r\ntwo\r\nthree\r\n",
        "\ufeffone\ntwo\nthree\n",
        "one\ntwo\nthree\n\n\n",
        "one\rtwo\rthree\r",
    ],
    ids=["lf", "lf-final", "crlf", "crlf-final", "bom", "trailing-blank-lines", "cr"],
)
def test_txt_line_endings_bom_and_final_newline(data):
    result = _import("p.txt", data)
    assert result.count == 3 and result.fmt == "txt"
    assert _texts() == ["one", "two", "three"]


def test_unicode_line_separator_stays_inside_a_prompt():
    _import("p.txt", "top\u2028bottom\nnext\n")
    assert _texts() == ["top\u2028bottom", "next"]


def test_text_kept_exactly_less_outer_whitespace():
    _import(
        "p.txt", '  "42"  \n42\n\t  a  cat,  "quoted"  and  spaced \n東京の夜景、看板に「こんにちは」と書かれている\n'
    )
    assert _texts() == [
        '"42"',
        "42",
        'a  cat,  "quoted"  and  spaced',
        "東京の夜景、看板に「こんにちは」と書かれている",
    ]
    ja = Prompt.objects.get(text__startswith="東京")
    assert ja.language == "ja" and ja.expected_text == "こんにちは"
    assert Prompt.objects.get(text="42").language == ""


def test_tsv_quoting_off_keeps_quotes_and_extra_columns_become_metadata(data_dir):
    data = (data_dir / "parti_excerpt.tsv").read_bytes()
    _import("PartiPrompts.tsv", data)
    giggle = Prompt.objects.get(text__startswith='"G I G G L E"')
    assert giggle.category == "Illustrations" and giggle.challenge == "Writing & Symbols"
    _import("x.tsv", 'Prompt\tSource\tcategory\n"a" b\tparti\tart\n', suite="t")
    row = Prompt.objects.get(suite__name="t")
    assert (row.text, row.category, row.metadata) == ('"a" b', "art", {"Source": "parti"})


def test_csv_standard_quoting(data_dir):
    _import("DrawBench.csv", (data_dir / "drawbench_excerpt.csv").read_bytes())
    plates = Prompt.objects.get(text__startswith="A stack of 3 plates")
    assert plates.text.endswith("The green plate is on the bottom.") and plates.category == "DALL-E"
    assert Prompt.objects.get(text__contains="kid's bedroom").expected_text == ""


def test_csv_columns_expected_text_language_note_and_aliases():
    data = 'Text,Language,Expected_Text,Note,seed\n"a sign, red",de,STOP,n1,7\n"a \'dog\' sign",,,,8\n'
    _import("s.csv", data)
    first, second = Prompt.objects.order_by("position")
    assert (first.text, first.language, first.expected_text, first.note, first.metadata) == (
        "a sign, red",
        "de",
        "STOP",
        "n1",
        {"seed": "7"},
    )
    # The file has the columns: empty cells stay empty, nothing is guessed.
    assert (second.expected_text, second.language) == ("", "")


def test_json_array_of_strings_and_objects():
    _import("a.json", json.dumps(["first", "  second  "]))
    assert _texts() == ["first", "second"]
    data = json.dumps([{"prompt": "x", "id": 3, "tags": ["a", "b"], "category": "c"}, {"Prompt": "y"}], indent=2)
    _import("b.json", data, suite="objs")
    x = Prompt.objects.get(suite__name="objs", text="x")
    assert (x.metadata, x.tags, x.category, x.source_line) == ({"id": 3}, ["a", "b"], "c", 2)
    second_object_line = [i for i, line in enumerate(data.splitlines(), start=1) if line.strip() == "{"][1]
    assert Prompt.objects.get(suite__name="objs", text="y").source_line == second_object_line == 11


def test_jsonl_strings_and_objects(data_dir):
    _import("e.jsonl", (data_dir / "geneval_excerpt.jsonl").read_bytes())
    assert set(Prompt.objects.values_list("category", flat=True)) == {"single_object"}
    _import("f.jsonl", '"plain string"\n{"text": "object"}\n', suite="mixed")
    assert _texts("mixed") == ["plain string", "object"]


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [
        ("prompts.csv", "prompt\tcategory\na\tb\n", "tsv"),  # tab-separated export named .csv
        ("upload", "prompt,category\na,b\n", "csv"),
        ("upload", "Prompt\tCategory\na\tb\n", "tsv"),
        ("upload", '["a"]', "json"),
        ("upload", '{"prompt": "a"}\n', "jsonl"),
        ("prompts.json", '{"prompt": "a"}\n{"prompt": "b"}\n', "jsonl"),
        ("upload", "a photo of a cat, a dog\n", "txt"),
        ("p.txt", "prompt, with a comma\n", "txt"),
        ("p.data", "just a prompt\n", "txt"),
    ],
)
def test_format_detection_from_extension_and_content(name, data, fmt):
    assert _import(name, data).fmt == fmt
    assert PromptSuite.objects.get(name="s").source_format == fmt


def test_explicit_format_wins():
    result = _import("p.csv", "prompt,category\n", fmt="txt")
    assert result.fmt == "txt" and _texts() == ["prompt,category"]


def test_duplicates_are_reported_and_kept_once():
    result = _import("p.txt", "a cat\nb dog\n  a cat \nc\n")
    assert _texts() == ["a cat", "b dog", "c"]
    assert [w.format("p.txt") for w in result.warnings] == [
        "p.txt:3: warning: duplicate of the prompt on line 1; kept once"
    ]
    assert list(Prompt.objects.order_by("position").values_list("position", "source_line")) == [(1, 1), (2, 2), (3, 4)]


def test_prompt_of_exactly_the_limit_is_fine(settings):
    assert settings.PROMPT_MAX_CHARS == 4000
    assert _import("p.txt", "x" * 4000).count == 1


def test_replace_swaps_prompts_and_identical_reimport_changes_nothing():
    from tests.factories import SweepFactory

    first = _import("p.txt", "a\nb\n")
    second = prompt_suite_import(path_or_name="q.txt", data=b"c\n", suite_name="s", replace=True)
    assert second.replaced and second.suite.pk == first.suite.pk and _texts() == ["c"]
    SweepFactory(suite=second.suite)
    same = prompt_suite_import(path_or_name="q.txt", data=b"c\n", suite_name="s", replace=True)
    assert same.unchanged and _texts() == ["c"]


def test_small_copies_of_compbench_and_imagereward(data_dir):
    crlf = (data_dir / "compbench_excerpt_crlf.txt").read_bytes()
    assert b"\r\n" in crlf and not crlf.endswith(b"\n")
    assert _import("color_val.txt", crlf).count == crlf.count(b"\r\n") + 1
    assert not Prompt.objects.filter(text__contains="\r").exists()
    result = _import("benchmark-prompts.json", (data_dir / "imagereward_excerpt.json").read_bytes(), suite="ir")
    assert result.fmt == "json" and result.count == 3
    assert Prompt.objects.get(suite__name="ir", position=1).metadata == {"id": "005695-0057"}
