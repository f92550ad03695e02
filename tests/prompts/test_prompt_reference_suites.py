"""import_prompts on the public benchmark files in ../shared/testdata/prompt_suites (counts pinned)."""

from __future__ import annotations

import csv
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command

from prompts.models import Prompt, PromptSuite

pytestmark = pytest.mark.django_db


def _import(path, suite: str) -> str:
    out = StringIO()
    call_command("import_prompts", str(path), "--suite", suite, stdout=out)
    return out.getvalue().strip()


def _categories(suite: str) -> Counter:
    return Counter(Prompt.objects.filter(suite__name=suite).values_list("category", flat=True))


def test_partiprompts_1632_prompts_in_12_categories(reference_dir):
    assert _import(reference_dir / "PartiPrompts.tsv", "parti") == "imported 1632 prompts into suite parti"
    suite = PromptSuite.objects.get(name="parti")
    assert suite.source_format == "tsv"
    assert suite.prompts.count() == 1632
    assert len(_categories("parti")) == 12
    challenges = Counter(suite.prompts.values_list("challenge", flat=True))
    assert challenges["Writing & Symbols"] == 91 and challenges["Fine-grained Detail"] == 312
    # Quoting off: the leading quote is part of the prompt.
    giggle = suite.prompts.get(text__startswith='"G I G G L E"')
    assert giggle.text.startswith('"G I G G L E" painted in thick colorful lettering')
    assert giggle.expected_text == "G I G G L E"
    first, last = suite.prompts.order_by("position")[0], suite.prompts.order_by("-position")[0]
    assert (first.text, first.category, first.challenge, first.source_line) == ("bond", "Abstract", "Basic", 2)
    assert first.note == "Biology-inspired concepts with multiple meanings"
    assert last.text == "a series of musical notes on a computer screen" and last.note == ""
    assert suite.prompts.filter(text__contains="Dalí").exists()
    assert not suite.prompts.filter(text__contains="cat's tail").exclude(expected_text="").exists()


def test_drawbench_200_prompts_in_11_categories_text_prompts_have_expected_text(reference_dir):
    assert _import(reference_dir / "DrawBench.csv", "drawbench") == "imported 200 prompts into suite drawbench"
    cats = _categories("drawbench")
    assert len(cats) == 11 and cats["Text"] == 21 and cats["Reddit"] == 38 and sum(cats.values()) == 200
    text_prompts = Prompt.objects.filter(suite__name="drawbench", category="Text")
    with open(reference_dir / "DrawBench.csv", encoding="utf-8", newline="") as fh:
        quoted = [r[0] for r in csv.reader(fh) if r[1] == "Text" and "'" in r[0]]
    assert len(quoted) == 21
    for prompt in text_prompts:
        assert prompt.expected_text, prompt.text
        assert f"'{prompt.expected_text}'" in prompt.text
    assert text_prompts.get(text="A storefront with 'Hello World' written on it.").expected_text == "Hello World"
    assert text_prompts.get(text="A sign that says 'Google Research Pizza Cafe'.").expected_text == (
        "Google Research Pizza Cafe"
    )
    # Apostrophes elsewhere are not quotes.
    others = Prompt.objects.filter(suite__name="drawbench").exclude(category="Text")
    assert not others.exclude(expected_text="").exists()
    # Standard CSV quoting: a prompt with commas arrives whole, without the quotes.
    assert others.filter(text__startswith="A stack of 3 plates. A blue plate is on the top, sitting").exists()


def test_geneval_553_tag_becomes_category_rest_metadata(reference_dir):
    path = reference_dir / "GenEval_evaluation_metadata.jsonl"
    assert _import(path, "geneval") == "imported 553 prompts into suite geneval"
    assert _categories("geneval") == Counter(
        {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
    )
    bench = Prompt.objects.get(suite__name="geneval", text="a photo of a bench")
    assert bench.metadata == {"include": [{"class": "bench", "count": 1}]}
    assert Prompt.objects.filter(suite__name="geneval", metadata__has_key="exclude").exists()


def test_t2i_compbench_crlf_no_final_newline_300(reference_dir):
    path = reference_dir / "T2I-CompBench_color_val.txt"
    assert not path.read_bytes().endswith(b"\n") and b"\r\n" in path.read_bytes()
    assert _import(path, "compbench") == "imported 300 prompts into suite compbench"
    prompts = Prompt.objects.filter(suite__name="compbench").order_by("position")
    assert prompts.first().text == "a green bench and a blue bowl"
    assert prompts.last().text == "a black bathroom with a black and white shower curtain"
    assert not prompts.filter(text__contains="\r").exists()


def test_imagereward_json_100_ids_kept_as_metadata(reference_dir):
    path = reference_dir / "ImageReward_benchmark-prompts.json"
    assert _import(path, "imagereward") == "imported 100 prompts into suite imagereward"
    first = Prompt.objects.filter(suite__name="imagereward").order_by("position").first()
    assert (first.text, first.metadata) == ("a concept art of a vehicle, cyberpunk", {"id": "005695-0057"})
    assert first.source_line == 2


def test_sample_suite_ships_with_categories_text_and_non_english():
    from django.conf import settings

    out = _import(settings.BASE_DIR / "samples" / "sample_suite.csv", "sample")
    assert out.startswith("imported ") and out.endswith(" prompts into suite sample")
    prompts = Prompt.objects.filter(suite__name="sample")
    assert prompts.count() >= 12
    assert set(_categories("sample")) == {"Portraits", "Landscapes", "UI mockups", "Product shots", "Abstract art",
                                        "Objects & counts"}
    assert prompts.exclude(expected_text="").count() >= 3
    chinese = prompts.get(language="zh")
    assert chinese.expected_text == "清风茶社" and chinese.expected_text in chinese.text
