"""The demo's known truth (samples/demo_truth.md): the painters rendered on the sample suite and rated by
the simulated panel give a board whose order per criterion is the known one, and the OCR column ranks the
painters by their text errors."""

from __future__ import annotations

import itertools
import shutil

import pytest
from django.conf import settings
from django.core.management import call_command
from scipy.stats import spearmanr

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_board(tmp_path, cpu_engine):
    from generation.models import Generation
    from generation.services import demo_models_build, generation_chunk_render, sweep_create
    from prompts.models import PromptSuite
    from ratings.models import Study
    from ratings.results.selectors import leaderboard_compute
    from ratings.results.services import ratings_simulate
    from ratings.services import study_create

    call_command("import_prompts", str(settings.BASE_DIR / "samples" / "sample_suite.csv"), suite="sample")
    models = [m for m, _ in demo_models_build(model_dir=tmp_path / "models")]
    sweep = sweep_create(suite=PromptSuite.objects.get(name="sample"), image_models=models, seeds=[0],
                         canvas_width=512, canvas_height=512, name="demo")
    for model in models:
        ids = list(Generation.objects.filter(sweep=sweep, model=model).values_list("id", flat=True))
        generation_chunk_render(sweep_id=sweep.pk, model_id=model.pk, generation_ids=ids, engine=cpu_engine)
    study = study_create(sweep=sweep, name="Demo study", mode="both", ratings_per_item=3)
    ratings_simulate(study=Study.objects.get(pk=study.pk), panelists=6, seed=0)  # what `make demo-panel` runs
    from generation.selectors import generation_text_checks

    checks = generation_text_checks(sweep=sweep)  # what the gallery shows beside each text image
    assert len(checks) == 6 * 5 and all(c["recognised"] or c["cer"] == 1.0 for c in checks.values())
    return leaderboard_compute(study=study)


@pytest.fixture(scope="session")
def cpu_engine():
    from generation.engine import Engine

    return Engine(device="cpu")


def _order(board, cells):
    slugs = [m.slug for m in board.models]
    return [slugs[i] for i in sorted(range(len(slugs)), key=lambda i: -cells[i].mean)]


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (make setup)")
def test_demo_board_matches_the_known_truth(demo_board):
    from generation.engine.demo_draw import TRUE_ORDER
    from ratings.results.export import leaderboard_rows

    slugs = [m.slug for m in demo_board.models]
    for key, truth in TRUE_ORDER.items():
        # The simulated panel is random (which rater sees which image): close neighbours may swap places,
        # but the board never credibly contradicts the truth, and its order is close to it.
        for better, worse in itertools.combinations(truth, 2):
            d = demo_board.difference(key, slugs.index(better), slugs.index(worse))
            assert d.verdict != "b", (key, better, worse, d)
        order = _order(demo_board, demo_board.scores[key])
        assert spearmanr([truth.index(s) for s in order], range(len(order))).statistic >= 0.8, (key, order, truth)
    ocr = demo_board.ocr
    assert ocr.n_checked == ocr.n_images == 6 * 5 and ocr.n_failed == 0
    assert ocr.correlation.spearman > 0.2
    # an accuracy is a percentage: its interval stays within 0-100 (the t interval alone went above 100)
    assert all(0.0 <= c.ci_low <= c.mean <= c.ci_high <= 100.0 for c in ocr.cells)
    # OCR ranks the painters by their text errors, like the panel's text-rendering score
    assert _order(demo_board, ocr.cells) == TRUE_ORDER["text_rendering"]
    header, rows = leaderboard_rows(board=demo_board)
    column = header.index("ocr_text_accuracy_pct")
    assert header[column:column + 5] == ["ocr_text_accuracy_pct", "ocr_ci_low", "ocr_ci_high", "ocr_n_images",
                                         "ocr_all_words_pct"]
    assert all(row[column + 1] <= row[column] <= row[column + 2] and row[column + 3] == 6 for row in rows)
