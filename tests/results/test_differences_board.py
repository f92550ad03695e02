"""The board's differences, estimands and too-few cells through the real command, CSV endpoints and page."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from ratings.models import Estimand, Rating
from ratings.results import selectors as rs

pytestmark = pytest.mark.django_db

KEYS = ("prompt_accuracy", "photorealism", "text_rendering")


@pytest.fixture
def filled(study_factory):
    study, models, prompts = study_factory(mode="single", n_models=3, n_prompts=8, k=3, gold=False)
    call_command("simulate_panel", study=study.pk, panelists=6, seed=5, stdout=io.StringIO())
    study.refresh_from_db()
    return study, models


def _command_csv(study, fmt: str, **kw) -> list[dict]:
    out = io.StringIO()
    call_command("leaderboard", study=study.pk, format=fmt, stdout=out, **kw)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_differences_command_has_one_row_per_pair_and_criterion(filled):
    study, models = filled
    rows = _command_csv(study, "differences")
    assert list(rows[0])[:7] == ["criterion", "model_a", "model_b", "difference", "ci_low", "ci_high", "verdict"]
    crit_keys = {r["criterion"] for r in rows}
    n_crit = len(crit_keys)
    assert len(rows) == n_crit * 3  # 3 models: 3 pairs per criterion
    names = {m.name for m in models}
    for r in rows:
        assert {r["model_a"], r["model_b"]} <= names and r["model_a"] != r["model_b"]
        assert r["verdict"] in {"a", "b", "unclear"}
        if r["ci_low"]:
            lo, d, hi = float(r["ci_low"]), float(r["difference"]), float(r["ci_high"])
            assert -9 <= lo <= d <= hi <= 9
            assert r["verdict"] == ("a" if lo > 0 else "b" if hi < 0 else "unclear")
    # model_a is ranked at or above model_b (the board's order)
    board = rs.leaderboard_get(study=study)
    order = [board.models[i].name for i in board.order()]
    first = [r for r in rows if r["criterion"] == sorted(crit_keys)[0]]
    assert all(order.index(r["model_a"]) < order.index(r["model_b"]) for r in first)


def test_leaderboard_csv_has_normalized_intervals_and_ranks_from_differences(filled):
    study, _ = filled
    rows = _command_csv(study, "csv")
    board = rs.leaderboard_get(study=study)
    for c in board.criteria:
        k = c.key
        for r in rows:
            assert f"{k}_normalized_ci_low" in r and f"{k}_normalized_ci_high" in r
            if r[f"{k}_normalized_ci_low"]:
                assert 1 <= float(r[f"{k}_normalized_ci_low"]) <= float(r[f"{k}_normalized_mean"]) <= float(
                    r[f"{k}_normalized_ci_high"]) <= 10
                # rank = 1 + models credibly better on the rater-adjusted difference
                i = next(j for j, m in enumerate(board.models) if m.name == r["model"])
                better = sum(1 for j in range(len(board.models)) if j != i and board.difference(k, j, i).verdict == "a")
                assert int(r[f"{k}_rank"]) == 1 + better


def test_too_few_ratings_leave_interval_and_rank_cells_empty(study_factory):
    study, models, _ = study_factory(mode="single", n_models=2, n_prompts=3, k=1, gold=False)
    call_command("simulate_panel", study=study.pk, panelists=2, seed=1, stdout=io.StringIO())
    rows = _command_csv(study, "csv")
    key = rs.leaderboard_get(study=study).criteria[0].key
    for r in rows:
        assert r[f"{key}_mean"] and int(r[f"{key}_n"]) > 0
        assert r[f"{key}_ci_low"] == r[f"{key}_ci_high"] == r[f"{key}_rank"] == ""
        assert r[f"{key}_normalized_ci_low"] == ""
    diffs = _command_csv(study, "differences")
    assert all(d["verdict"] == "unclear" and d["ci_low"] == "" for d in diffs)
    table = io.StringIO()
    call_command("leaderboard", study=study.pk, stdout=table)
    assert "too few ratings" in table.getvalue()


def test_both_estimands_are_computed_and_the_study_setting_picks_one(filled):
    study, _ = filled
    random_rows = _command_csv(study, "differences", estimand=Estimand.RATERS_RANDOM)
    panel_rows = _command_csv(study, "differences", estimand=Estimand.THIS_PANEL)
    assert {r["estimand"] for r in random_rows} == {"raters_random"}
    assert {r["estimand"] for r in panel_rows} == {"this_panel"}
    width = lambda rows: sum(float(r["ci_high"]) - float(r["ci_low"]) for r in rows if r["ci_low"])  # noqa: E731
    assert width(panel_rows) <= width(random_rows)  # the panel's own taste is no uncertainty
    # the panel's leniency is no uncertainty either: its means are narrower
    board = rs.leaderboard_get(study=study)
    mean_width = lambda b: sum(c.ci_high - c.ci_low for cells in b.scores.values()  # noqa: E731
                               for c in cells if c.ci_low is not None)
    assert mean_width(board.for_estimand(Estimand.THIS_PANEL)) < mean_width(board)
    study.estimand = Estimand.THIS_PANEL
    study.save()
    assert {r["estimand"] for r in _command_csv(study, "differences")} == {"this_panel"}


def test_page_states_the_estimand_and_shows_the_better_than_matrix(filled, client, django_user_model):
    study, models = filled
    admin = django_user_model.objects.create_superuser("boss", "b@x.org", "pw")
    client.force_login(admin)
    page = client.get(f"/studies/{study.pk}/leaderboard/").content.decode()
    assert "What the 95% intervals are about" in page and "new raters like these" in page
    assert 'id="differences"' in page and "Which model is better" in page
    assert 'id="few-prompts-note"' in page  # 8 prompts: the page says why intervals are wider
    panel = client.get(f"/studies/{study.pk}/leaderboard/?estimand=this_panel").content.decode()
    assert "rated by this panel" in panel.split('id="estimand-toggle"')[0]
    resp = client.get(f"/studies/{study.pk}/differences.csv")
    assert resp.status_code == 200
    body = b"".join(resp.streaming_content).decode()
    assert body.splitlines()[0].startswith("criterion,model_a,model_b,difference,ci_low,ci_high,verdict")
    n_crit = Rating.objects.filter(study=study).values("criterion").distinct().count()
    assert len(body.strip().splitlines()) == 1 + 3 * n_crit


def test_two_raters_say_between_rater_variation_cannot_be_estimated(study_factory, client, django_user_model):
    study, _, _ = study_factory(mode="single", n_models=2, n_prompts=8, k=2, gold=False)
    call_command("simulate_panel", study=study.pk, panelists=2, seed=2, stdout=io.StringIO())
    board = rs.leaderboard_get(study=study)
    key = board.criteria[0].key
    assert all(c.ci_low is None and c.rank is None and not c.too_few for c in board.scores[key])
    panel = board.for_estimand(Estimand.THIS_PANEL)
    assert all(c.ci_low is not None for c in panel.scores[key])
    client.force_login(django_user_model.objects.create_superuser("boss2", "c@x.org", "pw"))
    page = client.get(f"/studies/{study.pk}/leaderboard/").content.decode()
    assert 'id="raters-note"' in page and "cannot be estimated" in page
