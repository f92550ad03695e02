"""import_ratings: ratings made elsewhere become a study whose leaderboard is the native study's.

The native study is rated through the real services (assignment_next / assignment_submit_sides, gold
items and an excluded panelist included), exported with export_ratings, and that file is imported.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random

import pytest
from django.core.management import CommandError, call_command

from generation.models import Backend, Generation, ImageModel, Origin
from prompts.models import Prompt, PromptSuite
from ratings.models import Assignment, Criterion, Panelist, Rating, Study, StudyStatus
from ratings.results.export import ratings_csv_write
from ratings.results.selectors import leaderboard_get
from ratings.selectors import criteria_for_prompt
from ratings.services import (
    StudySetupError,
    assignment_next,
    assignment_submit_sides,
    panelist_consent,
    panelist_create,
    panelist_exclude,
    study_items_sync,
    study_open,
)
from ratings.services.imports import RatingFileInvalid, ratings_import

pytestmark = pytest.mark.django_db

# columns of `leaderboard --format csv` that describe the renders, not the ratings
RENDER_COLUMNS = {"speed_median_s", "speed_mean_s", "n_images", "gpu", "mode", "peak_vram_allocated_gib",
                  "peak_vram_reserved_gib", "min_vram_card_gb", "min_vram_setting", "usd_per_1000_images"}


def _rate_natively(study: Study, *, n_raters: int, seed: int, max_items: int = 60) -> list[Panelist]:
    """Panelists rater-1..n answer through the real assignment services (model quality + rater leniency + noise)."""
    rng = random.Random(seed)
    study_open(study=study)
    quality = {}
    panelists = []
    for i in range(1, n_raters + 1):
        p = panelist_create(study=study, pseudonym=f"rater-{i}")
        panelist_consent(panelist=p)
        lenient = rng.choice([-1, 0, 1])
        for _ in range(max_items):
            a = assignment_next(panelist=p)
            if a is None:
                break
            sides = {"single": a.left} if a.kind == "single" else {"left": a.left, "right": a.right}
            answers = {}
            for side, gen in sides.items():
                for c in criteria_for_prompt(study=study, prompt=a.shown_prompt):
                    base = quality.setdefault((gen.model_id, c.key), rng.uniform(3, 8))
                    answers[(side, c.key)] = min(10, max(1, round(base + lenient + rng.gauss(0, 1.2))))
            assignment_submit_sides(assignment_id=a.pk, panelist=p, answers=answers)
        panelists.append(p)
    return panelists


def _export(study: Study) -> bytes:
    """The native study's ratings.csv, rows in prompt order (the imported suite keeps the order prompts first appear)."""
    buf = io.StringIO()
    ratings_csv_write(study=study, out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    header, body = rows[0], rows[1:]
    body.sort(key=lambda r: int(r[header.index("prompt_id")]))
    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    return out.getvalue().encode("utf-8")


def _leaderboard_csv(study_id: int, fmt: str = "csv") -> list[dict]:
    out = io.StringIO()
    call_command("leaderboard", study=study_id, format=fmt, stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def _import_command(path, name: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_ratings", str(path), study_name=name, stdout=out, stderr=err)
    assert "imported " in err.getvalue()
    return int(out.getvalue().strip())


def _same(a, b, path: str = "") -> bool:
    """Equal, floats to 1e-9 (sums over the same numbers in another row order differ in the last bits)."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        a, b = dataclasses.asdict(a), dataclasses.asdict(b)
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        return all(_same(a[k], b[k], f"{path}.{k}") for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), path
        return all(_same(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), (path, a, b)
        return True
    assert a == b, (path, a, b)
    return True


def _without_render_columns(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in RENDER_COLUMNS} for r in rows]


def test_imported_copy_of_a_native_study_gives_the_same_leaderboard(study_factory, tmp_path):
    study, models, prompts = study_factory(mode="both", n_models=3, n_prompts=8, k=2, gold=True)
    study.gold_share = 0.2
    study.save(update_fields=["gold_share"])
    panelists = _rate_natively(study, n_raters=5, seed=3)
    panelist_exclude(panelist=panelists[-1], reason="test")
    native_ratings = Rating.objects.filter(study=study)
    assert native_ratings.filter(assignment__is_gold=True).exists()  # attention checks are in the file
    assert native_ratings.filter(side="left").exists() and native_ratings.filter(side="single").exists()
    path = tmp_path / "native.csv"
    path.write_bytes(_export(study))

    imported_id = _import_command(path, "copy")
    imported = Study.objects.get(pk=imported_id)
    native_board, imported_board = leaderboard_get(study=study), leaderboard_get(study=imported)
    native_csv, imported_csv = _leaderboard_csv(study.pk), _leaderboard_csv(imported_id)

    assert len(native_csv) == 3 and [r["model"] for r in native_csv] == [r["model"] for r in imported_csv]
    assert _without_render_columns(imported_csv) == _without_render_columns(native_csv)
    assert all(r["mode"] == "imported" and r["speed_median_s"] == "" and r["n_images"] == "0" for r in imported_csv)
    for part in ("scores", "agreement", "pairs", "by_category"):
        assert _same(getattr(imported_board, part), getattr(native_board, part)), part
    assert imported_board.n_ratings_used == native_board.n_ratings_used
    # attention-check rows are left out of the import (their shown prompt is not in the file): the rest is equal
    assert imported_board.n_ratings_gold == 0 < native_board.n_ratings_gold
    assert imported_board.n_ratings_excluded == native_ratings.filter(
        panelist__excluded=True, assignment__is_gold=False).count() > 0
    # the registered models were matched by name; nothing was rendered or made servable
    assert set(imported.sweep.image_models.all()) == set(models)
    gens = Generation.objects.filter(sweep=imported.sweep)
    assert gens.count() == 3 * 8 and set(gens.values_list("origin", flat=True)) == {Origin.IMPORTED}
    assert not gens.exclude(image="").exists()
    assert imported.status == StudyStatus.CLOSED and imported.imported_from == "native.csv"
    assert [c.key for c in imported.criteria.all()] == [c.key for c in study.criteria.all()]


def test_imported_study_gives_the_same_differences(study_factory, tmp_path):
    formats = _leaderboard_formats()
    if "differences" not in formats:
        pytest.xfail("leaderboard --format differences is not in this tree yet (issue 11, point 1)")
    study, _, _ = study_factory(mode="single", n_models=3, n_prompts=8, k=3, gold=False)
    _rate_natively(study, n_raters=4, seed=5)
    path = tmp_path / "native.csv"
    path.write_bytes(_export(study))
    imported_id = _import_command(path, "copy")
    native = _leaderboard_csv(study.pk, "differences")
    assert native and _leaderboard_csv(imported_id, "differences") == native


def _leaderboard_formats() -> list[str]:
    from ratings.management.commands.leaderboard import Command

    parser = Command().create_parser("manage.py", "leaderboard")
    return next(a.choices for a in parser._actions if a.dest == "format")


def test_pairs_import_with_the_same_pair_strengths(study_factory, tmp_path):
    study, _, _ = study_factory(mode="pair", n_models=4, n_prompts=8, k=2, gold=False)
    _rate_natively(study, n_raters=4, seed=11)
    path = tmp_path / "pairs.csv"
    path.write_bytes(_export(study))
    imported = Study.objects.get(pk=_import_command(path, "pairs"))
    native_board, imported_board = leaderboard_get(study=study), leaderboard_get(study=imported)
    assert native_board.pairs.n_pairs > 40
    assert _same(imported_board.pairs, native_board.pairs)
    for key, bt in native_board.pairs.by_criterion.items():
        assert imported_board.pairs.by_criterion[key].strength == bt.strength
    assert imported.mode == "pair"
    assert Assignment.objects.filter(study=imported, kind="pair").count() == \
        Assignment.objects.filter(study=study, kind="pair", status="done").count()


def test_a_spreadsheet_with_new_models_prompts_and_criteria(tmp_path):
    path = tmp_path / "sheet.tsv"
    path.write_text(
        "Rater\tModel\tPrompt\tCriterion\tScore\tCategory\n"
        "ann\tClosed API v2\ta red cube\tprompt_accuracy\t7\tObjects\n"
        "ann\tOther Model\ta red cube\tprompt_accuracy\t4\tObjects\n"
        "bob\tClosed API v2\ta red cube\taesthetics\t9\t\n"
        "bob\tOther Model\t\"quoted\" sign\taesthetics\t2\tText\n", encoding="utf-8")
    study = Study.objects.get(pk=_import_command(path, "sheet"))
    models = {m.name: m for m in study.sweep.image_models.all()}
    assert set(models) == {"Closed API v2", "Other Model"}
    assert all(m.backend == Backend.IMPORTED for m in models.values())
    crits = {c.key: c for c in Criterion.objects.filter(study=study)}
    assert list(crits) == ["prompt_accuracy", "aesthetics"]
    assert crits["aesthetics"].name == "aesthetics" and crits["aesthetics"].categories == []
    assert not crits["aesthetics"].text_prompts_only
    prompts = list(Prompt.objects.filter(suite=study.sweep.suite).order_by("position").values_list("text", "category"))
    assert prompts == [("a red cube", "Objects"), ('"quoted" sign', "Text")]  # TSV keeps quotes as text
    assert study.mode == "single" and Rating.objects.filter(study=study).count() == 4
    board = leaderboard_get(study=study)
    assert [m.imported for m in board.models] == [True, True]
    with pytest.raises(StudySetupError):
        study_open(study=study)
    assert study_items_sync(study=study) == 0  # no image: nothing for a panelist


def test_cells_the_exports_neutralised_read_back_as_written(tmp_path):
    """ratings.csv writes '=… (CSV formula neutralisation); the import reads it back as the text it was."""
    path = tmp_path / "f.csv"
    path.write_text("rater,model,prompt,criterion,score\n'-x,'@model,'=SUM(A1) on a sign,prompt_accuracy,5\n"
                    "bob,'@model,'it''s fine',prompt_accuracy,6\n", encoding="utf-8")
    study = Study.objects.get(pk=_import_command(path, "neutral"))
    assert list(Panelist.objects.filter(study=study).values_list("pseudonym", flat=True)) == ["-x", "bob"]
    assert [m.name for m in study.sweep.image_models.all()] == ["@model"]
    texts = list(Prompt.objects.filter(suite=study.sweep.suite).order_by("position").values_list("text", flat=True))
    assert texts == ["=SUM(A1) on a sign", "'it''s fine'"]


def _counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Study, ImageModel, PromptSuite, Prompt, Generation, Panelist,
                                             Assignment, Rating, Criterion))


HEAD = "rater,model,prompt,criterion,score,pair,side\n"
GOOD = "ann,A,p1,prompt_accuracy,5,,\n"


@pytest.mark.parametrize(("body", "expected"), [
    (HEAD + GOOD + "ann,B,p1,prompt_accuracy,11,,\n", ["x.csv:3: score '11' is not a whole number from 1 to 10"]),
    (HEAD + "ann,B,p1,prompt_accuracy,0,,\n", ["x.csv:2: score '0' is not a whole number from 1 to 10"]),
    (HEAD + "ann,B,p1,prompt_accuracy,7.5,,\n", ["x.csv:2: score '7.5' is not a whole number from 1 to 10"]),
    (HEAD + "ann,B,p1,prompt_accuracy,good,,\n", ["x.csv:2: score 'good' is not a whole number from 1 to 10"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,middle\n",
     ["x.csv:2: unknown side 'middle'; use left or right (or leave it empty)"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,,left\n", ["x.csv:2: side left without a pair id (the pair column)"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,\n", ["x.csv:2: pair 'q' needs a side: left or right"]),
    (HEAD + GOOD + "ann,B,p1,prompt_accuracy,5,q,left\n",
     ["x.csv:3: pair 'q' has only a left side (line 3); a pair needs exactly two sides, left and right"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,left\nann,C,p1,prompt_accuracy,5,q,left\n",
     ["x.csv:2: pair 'q' has only a left side (lines 2, 3); a pair needs exactly two sides, left and right"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,left\nann,C,p1,prompt_accuracy,5,q,right\nann,D,p1,prompt_accuracy,5,q,right\n",
     ["x.csv:4: pair 'q': the right side is 'C' on line 3 and 'D' here"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,left\nann,C,p1,prompt_accuracy,5,q,right\nann,B,p1,photorealism,5,q,left\n",
     ["x.csv:4: pair 'q' has no right side for criterion photorealism"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,left\nbob,C,p1,prompt_accuracy,5,q,right\n",
     ["x.csv:3: pair 'q' has rows of two raters ('ann' on line 2)"]),
    (HEAD + "ann,B,p1,prompt_accuracy,5,q,left\nann,B,p1,prompt_accuracy,6,q,right\n",
     ["x.csv:2: pair 'q' compares 'B' with itself",
      "x.csv:3: duplicate of line 2 (same rater, model, prompt, criterion and pair)"]),
    (HEAD + ",A,p1,prompt_accuracy,,,\n", ["x.csv:2: empty rater, score"]),
    (HEAD + "ann, ,p1, ,5,,\n", ["x.csv:2: empty model, criterion"]),
    (HEAD + GOOD + "ann,A,p1,prompt_accuracy,6,,\n",
     ["x.csv:3: duplicate of line 2 (same rater, model, prompt, criterion and pair)"]),
    (HEAD + "ann,A,p1,Prompt Accuracy,6,,\n",
     ["x.csv:2: criterion 'Prompt Accuracy' is not a key: use letters, digits, '_' and '-' (at most 50), "
      "e.g. prompt_accuracy"]),
    ("rater,model,prompt,criterion\nann,A,p1,prompt_accuracy\n",
     ["x.csv:1: missing column score (the header has 'rater', 'model', 'prompt', 'criterion'); "
      "required: rater, model, prompt, criterion, score"]),
    ("rater,model,rater,prompt,criterion,score\n", ["x.csv:1: column 'rater' appears twice in the header"]),
    (HEAD, ["x.csv:0: file has a header but no ratings"]),
    ("", ["x.csv:0: file is empty"]),
    (HEAD + "ann,A,p1,prompt_accuracy,5\n", ["x.csv:2: expected 7 CSV fields, found 5"]),
    (HEAD + GOOD + "\n" + "bob,A,p1,prompt_accuracy,5,,\n",
     ["x.csv:3: blank line: every line must hold a rating (remove it)"]),
    ("rater,model,prompt,criterion,score,category\nann,A,p1,pa,5,Text\nbob,A,p1,pa,5,Photo\n",
     ["x.csv:3: category 'Photo', but line 2 gives this prompt category 'Text'"]),
])
def test_bad_input_lists_every_problem_and_imports_nothing(tmp_path, body, expected):
    path = tmp_path / "x.csv"
    path.write_text(body, encoding="utf-8")
    before = _counts()
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_ratings", str(path), study_name="bad", stdout=io.StringIO(), stderr=err)
    lines = [line.replace(str(tmp_path) + "/", "") for line in err.getvalue().splitlines()]
    assert lines == expected
    assert _counts() == before


def test_every_problem_of_a_file_is_listed_at_its_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(HEAD + GOOD + "ann,B,p1,prompt_accuracy,12,,\nann,C,p1,prompt_accuracy,3,,up\n" + GOOD,
                    encoding="utf-8")
    with pytest.raises(RatingFileInvalid) as exc:
        ratings_import(path_or_name=str(path), data=path.read_bytes(), study_name="bad")
    assert exc.value.lines("x.csv") == [
        "x.csv:3: score '12' is not a whole number from 1 to 10",
        "x.csv:4: unknown side 'up'; use left or right (or leave it empty)",
        "x.csv:5: duplicate of line 2 (same rater, model, prompt, criterion and pair)",
    ]


def test_unreadable_and_non_utf8_files_import_nothing(tmp_path):
    before = _counts()
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((HEAD + "Jos\xe9,A,caf\xe9,prompt_accuracy,5,,\n").encode("latin-1"))
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_ratings", str(latin1), study_name="bad", stderr=err)
    assert err.getvalue().splitlines() == [
        f"{latin1}:2: bytes that are not UTF-8 (0xE9 at byte 4); save the file as UTF-8"]
    png = tmp_path / "img.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_ratings", str(png), study_name="bad", stderr=err)
    assert err.getvalue().splitlines() == [f"{png}:0: binary file (a PNG image), not a text ratings file (CSV or TSV)"]
    missing = tmp_path / "nope.csv"
    with pytest.raises(CommandError, match=rf"{missing}:0: can't read the file: No such file or directory"):
        call_command("import_ratings", str(missing), study_name="bad")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_ratings", str(latin1), study_name="  ", stderr=err)
    assert err.getvalue().splitlines() == [f"{latin1}:0: study name is empty"]
    assert _counts() == before


def test_a_write_that_fails_half_way_leaves_nothing(monkeypatch):
    """Atomic: the checks passed, the database refuses the last insert (a real constraint), nothing stays."""
    from django.db import IntegrityError

    from ratings.services import imports

    real = imports._rows_insert

    def last_insert_refused(model, rows, **kw):
        if model is Rating:
            rows[0]["score"] = 11  # the rating_score_1_10 check constraint refuses it in the database
        return real(model, rows, **kw)

    monkeypatch.setattr(imports, "_rows_insert", last_insert_refused)
    before = _counts()
    with pytest.raises(IntegrityError):
        ratings_import(path_or_name="x.csv", data=(HEAD + GOOD).encode(), study_name="half")
    assert _counts() == before
