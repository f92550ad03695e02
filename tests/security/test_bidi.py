"""Issue 12 (3): direction controls in prompts are isolated and shown, on every page, and flagged at import."""

from __future__ import annotations

import re

import pytest

from evalsite.text_safety import bidi_safe, hidden_controls
from prompts.models import Prompt
from prompts.services import prompt_suite_import
from ratings import services
from tests.factories import make_sweep

pytestmark = pytest.mark.django_db

SPOOF = "evil\u202eexe.live"  # shown as "evilevil.exe": the override reverses what follows
EXPECTED = "\u202eNEPO"


def test_bidi_safe_isolates_and_shows_controls():
    html = str(bidi_safe(SPOOF + " <b>"))
    assert html.startswith('<bdi dir="auto">') and html.endswith("</bdi>")
    assert "\u202e" not in html and "⟨U+202E⟩" in html and "&lt;b&gt;" in html
    assert hidden_controls("a\u2066b\u200bc\u0007") == ["U+2066", "U+200B", "U+0007"]
    assert hidden_controls("ملصق عربي and 中文 and emoji ✓") == []  # real scripts are not controls


def test_import_flags_controls_with_the_line():
    data = f"prompt,category\na plain cat,x\n{SPOOF},y\n".encode()
    result = prompt_suite_import(path_or_name="p.csv", data=data, suite_name="bidi")
    lines = [w.format("p.csv") for w in result.warnings]
    assert any(line.startswith("p.csv:3: warning: prompt holds invisible control characters (U+202E)")
               for line in lines), lines
    assert Prompt.objects.get(suite=result.suite, source_line=3).text == SPOOF  # kept as written


def test_panelist_page_shows_the_prompt_and_expected_text_isolated(client):
    sweep, models, prompts, gens = make_sweep(n_models=2, n_prompts=2, text_prompts=2)
    Prompt.objects.filter(pk__in=[p.pk for p in prompts]).update(text=SPOOF, expected_text=EXPECTED)
    study = services.study_create(sweep=sweep, name="bidi", mode="single", gold_enabled=False)
    services.study_open(study=study)
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    assert "\u202e" not in html
    prompt = re.search(r'<p class="prompt"[^>]*>(.*?)</p>', html, re.S)
    assert prompt and 'dir="auto"' in prompt.group(0) and "<bdi" in prompt.group(1) and "⟨U+202E⟩" in prompt.group(1)
    assert re.search(r"<q><bdi dir=\"auto\"><span class=\"ctl\"[^>]*>⟨U\+202E⟩</span>NEPO</bdi></q>", html)
