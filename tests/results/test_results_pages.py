"""Leaderboard, exports and simulate_panel on a real (SQLite) database, through RATINGS' services."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db.models import Avg, Count

from ratings.models import Rating, StudyItem, StudyStatus
from ratings.results import selectors as rs
from ratings.results.board import BOARD_FORMAT
from ratings.results.export import RATINGS_CSV_HEADER
from ratings.results.services import ratings_simulate
from ratings.services import panelist_create, panelist_exclude, study_close

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled(study_factory):
    study, models, prompts = study_factory(mode="both", n_models=3, n_prompts=6, k=2)
    call_command("simulate_panel", study=study.pk, panelists=12, seed=3, stdout=io.StringIO())
    study.refresh_from_db()
    return study, models, prompts


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_simulate_panel_fills_every_item_and_flags_everything(filled):
    study, models, _ = filled
    assert study.status == StudyStatus.OPEN  # a draft was opened
    ratings = Rating.objects.filter(study=study)
    assert ratings.count() > 0
    assert not ratings.filter(is_simulated=False).exists()
    assert not study.panelists.filter(is_simulated=False).exists()
    # every single and pair item got its k answers
    assert not StudyItem.objects.filter(study=study, n_done__lt=2).exists()
    # pairs were answered too, both sides scored by the same simulated rater
    assert ratings.filter(side="left").count() == ratings.filter(side="right").count() > 0


def test_simulated_scores_follow_the_latent_truth(study_factory):
    """A careful simulated rater scores an image around the model's latent quality (a hash of model and
    criterion, so the same on every run) minus the prompt's difficulty; a careless one does not."""
    from generation.models import Generation
    from ratings.models import Assignment, AssignmentKind
    from ratings.results.services import SimulatedRater, _Truth
    from ratings.results.simulation import latent_quality_for

    study, models, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    gen = Generation.objects.select_related("model", "prompt").filter(sweep=study.sweep, model=models[0]).first()
    criterion = study.criteria.get(key="photorealism")
    truth = _Truth(seed=1)
    expected = latent_quality_for(f"{models[0].slug}:photorealism") - truth.difficulty(gen.prompt_id)
    assert truth.image_quality(gen, "photorealism") == latent_quality_for(f"{models[0].slug}:photorealism")
    item = Assignment(kind=AssignmentKind.SINGLE, left=gen, is_gold=False)

    def mean_score(rater: SimulatedRater) -> float:
        draws = [truth.scores(assignment=item, rater=rater, criteria=[criterion])[(gen.pk, criterion.pk)]
                 for _ in range(600)]
        return float(np.mean(draws))

    careful = mean_score(SimulatedRater(offset=0.0, stretch=1.0, careless=False))
    assert careful == pytest.approx(min(max(expected, 1.0), 10.0), abs=0.3)
    assert mean_score(SimulatedRater(offset=0.0, stretch=1.0, careless=True)) == pytest.approx(5.5, abs=0.4)


def test_leaderboard_command_csv_has_one_row_per_model_with_every_column(filled):
    study, models, _ = filled
    out = io.StringIO()
    call_command("leaderboard", study=study.pk, format="csv", stdout=out)
    rows = _csv(out.getvalue())
    header, body = rows[0], rows[1:]
    assert len(body) == len(models)
    for key in ("prompt_accuracy", "photorealism", "text_rendering"):
        for suffix in ("mean", "ci_low", "ci_high", "n"):
            assert f"{key}_{suffix}" in header
    for col in ("speed_median_s", "speed_mean_s", "gpu", "mode", "peak_vram_allocated_gib", "peak_vram_reserved_gib"):
        assert col in header
    by_model = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    # the numbers agree with the database: plain means of non-gold ratings
    for m in models:
        expect = Rating.objects.filter(study=study, generation__model=m, criterion__key="photorealism",
                                       assignment__is_gold=False).aggregate(a=Avg("score"), n=Count("id"))
        row = by_model[m.name]
        assert float(row["photorealism_mean"]) == pytest.approx(expect["a"], abs=1e-3)
        assert int(row["photorealism_n"]) == expect["n"]
        assert float(row["photorealism_ci_low"]) <= float(row["photorealism_mean"]) <= float(row["photorealism_ci_high"])
        assert row["gpu"] == "NVIDIA H100" and row["mode"] == "plain"
    # speed: median of 1+i+0.1*j over 6 prompts for model A = 1.25
    assert float(by_model["Model A"]["speed_median_s"]) == pytest.approx(1.25)
    assert float(by_model["Model B"]["peak_vram_allocated_gib"]) == pytest.approx(2.0)
    # text rendering only on the two text prompts
    assert all(int(by_model[m.name]["text_rendering_n_prompts"]) <= 2 for m in models)

    table = io.StringIO()
    call_command("leaderboard", study=study.pk, stdout=table)
    assert "Model A" in table.getvalue() and "Prompt accuracy" in table.getvalue()


def test_export_ratings_row_count_quoting_and_bom(filled, tmp_path):
    study, _, _ = filled
    path = tmp_path / "ratings.csv"
    call_command("export_ratings", study=study.pk, out=str(path), stderr=io.StringIO())
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = _csv(raw.decode("utf-8"))
    assert rows[0] == RATINGS_CSV_HEADER
    assert len(rows) - 1 == Rating.objects.filter(study=study).count()
    texts = {r[3] for r in rows[1:]}
    assert any('"OPEN, 0"\nsecond line ü' in t for t in texts)  # quotes, comma, newline, UTF-8 survive
    head = dict(zip(rows[0], rows[1], strict=True))
    assert head["simulated"] == "1" and head["mode"] in ("single", "pair")
    pair_rows = [dict(zip(rows[0], r, strict=True)) for r in rows[1:] if r[10] == "pair"]
    assert pair_rows and all(r["pair_partner_model"] and r["pair_partner_model"] != r["model"] for r in pair_rows)
    call_command("export_ratings", study=study.pk, out=str(path), bom=True, stderr=io.StringIO())
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_export_bad_input_is_a_clear_error(filled, tmp_path):
    study, _, _ = filled
    with pytest.raises(CommandError, match="No study"):
        call_command("export_ratings", study=999999, out=str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_ratings", study=study.pk, out=str(tmp_path / "missing" / "x.csv"))
    with pytest.raises(CommandError, match="No study"):
        call_command("leaderboard", study=999999)
    with pytest.raises(CommandError, match="No study"):
        call_command("simulate_panel", study=999999)


def test_excluded_panelists_leave_the_table_but_stay_in_exports(filled, tmp_path):
    study, models, _ = filled
    before = rs.leaderboard_get(study=study)
    victim = study.panelists.order_by("id").first()
    n_victim = Rating.objects.filter(panelist=victim).count()
    assert n_victim > 0
    panelist_exclude(panelist=victim, reason="random answers")
    after = rs.leaderboard_get(study=study)  # exclusion changes the version: recomputed
    assert after.n_ratings_used == before.n_ratings_used - Rating.objects.filter(
        panelist=victim, assignment__is_gold=False).count()
    assert after.n_ratings_excluded == n_victim
    path = tmp_path / "r.csv"
    call_command("export_ratings", study=study.pk, out=str(path), stderr=io.StringIO())
    rows = [dict(zip(RATINGS_CSV_HEADER, r, strict=True)) for r in _csv(path.read_text("utf-8"))[1:]]
    assert sum(r["excluded"] == "1" for r in rows) == n_victim


def test_gold_answers_are_not_scores(study_factory):
    study, _, _ = study_factory(mode="single", n_models=3, n_prompts=6, k=2, gold=True, gold_share=0.5)
    ratings_simulate(study=study, panelists=4, seed=2)
    n_gold = Rating.objects.filter(study=study, assignment__is_gold=True).count()
    assert n_gold > 0
    board = rs.leaderboard_get(study=study)
    assert board.n_ratings_gold == n_gold
    assert board.n_ratings_used == Rating.objects.filter(study=study).count() - n_gold
    assert board.raters.gold_n > 0


def test_leaderboard_cache_is_reused_and_invalidated_by_a_new_rating(filled):
    """Ratings are never edited, so the version (count, last id, exclusions…) is enough: an in-place
    edit is not seen (proof that the cached board is served), a removed or new rating is."""
    study, models, _ = filled
    first = rs.leaderboard_get(study=study)
    version = rs.ratings_version(study=study)
    assert cache.get(f"results:leaderboard:b{BOARD_FORMAT}:{study.pk}:{version}") is not None
    Rating.objects.filter(study=study).update(score=10)
    assert rs.ratings_version(study=study) == version
    assert rs.leaderboard_get(study=study).scores == first.scores  # served from the cache
    Rating.objects.filter(pk=Rating.objects.filter(study=study).order_by("-id").first().pk).delete()
    assert rs.ratings_version(study=study) != version
    second = rs.leaderboard_get(study=study)
    assert second.n_ratings_total == first.n_ratings_total - 1
    assert all(c.mean == 10 for c in second.scores["photorealism"])


def test_pairs_give_strengths_win_matrix_and_position_bias(filled):
    study, models, _ = filled
    board = rs.leaderboard_get(study=study)
    assert board.pairs.n_pairs > 0
    pa = board.pairs.by_criterion["photorealism"]
    assert len(pa.strength) == len(models)
    assert sum(pa.strength) == pytest.approx(0.0, abs=1e-6)
    wr = np.array([[np.nan if x is None else x for x in row] for row in pa.win_rate])
    played = ~np.isnan(wr)
    assert np.allclose((wr + wr.T)[played], 1.0)
    pb = board.pairs.position_bias
    assert 0 <= pb.left_win_rate <= 1 and pb.ci_low <= pb.left_win_rate <= pb.ci_high


# --------------------------------------------------------------------------- pages and access


def test_staff_sees_the_page_with_table_chart_and_settings(filled, admin_client):
    study, models, _ = filled
    resp = admin_client.get(f"/studies/{study.pk}/leaderboard/")
    assert resp.status_code == 200
    html = resp.content.decode()
    for m in models:
        assert m.name in html
    assert "<svg" in html and "Krippendorff" in html and "Bradley–Terry" in html
    assert "Simulated:" in html  # simulated ratings are flagged
    assert "NVIDIA H100" in html and "bfloat16" in html
    assert "Per prompt category" in html and "Text" in html


def test_staff_csv_endpoints_stream(filled, admin_client):
    study, models, _ = filled
    resp = admin_client.get(f"/studies/{study.pk}/ratings.csv?bom=1")
    assert resp.status_code == 200 and resp.streaming
    body = b"".join(resp.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    assert len(_csv(body.decode("utf-8-sig"))) - 1 == Rating.objects.filter(study=study).count()
    resp = admin_client.get(f"/studies/{study.pk}/leaderboard.csv")
    rows = _csv(b"".join(resp.streaming_content).decode())
    assert len(rows) - 1 == len(models)


def test_anonymous_and_panelists_cannot_see_results_while_open(filled, client):
    study, models, _ = filled
    for url in (f"/studies/{study.pk}/leaderboard/", f"/studies/{study.pk}/leaderboard.csv",
                f"/studies/{study.pk}/ratings.csv"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/admin/login/" in resp["Location"]
    panelist = panelist_create(study=study)
    resp = client.get(f"/r/{panelist.token}/results/")
    assert resp.status_code == 403
    html = resp.content.decode()
    assert not any(m.name in html for m in models)
    # closed but not published: still nothing
    study_close(study=study)
    resp = client.get(f"/r/{panelist.token}/results/")
    assert resp.status_code == 403
    # published: the panelist sees it, and then the study URL works in that session
    study.results_public = True
    study.save()
    resp = client.get(f"/r/{panelist.token}/results/")
    assert resp.status_code == 200 and all(m.name in resp.content.decode() for m in models)
    assert "Lowest agreement" not in resp.content.decode()  # pseudonyms stay with staff
    assert client.get(f"/studies/{study.pk}/leaderboard/").status_code == 200
    # ... but never the raw exports
    assert client.get(f"/studies/{study.pk}/ratings.csv").status_code == 302


def test_unknown_study_and_token_are_404(admin_client, client, db):
    assert admin_client.get("/studies/999999/leaderboard/").status_code == 404
    assert client.get("/r/not-a-token/results/").status_code == 404


def test_empty_study_renders(study_factory, admin_client):
    study, models, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    resp = admin_client.get(f"/studies/{study.pk}/leaderboard/")
    assert resp.status_code == 200
    out = io.StringIO()
    call_command("leaderboard", study=study.pk, format="csv", stdout=out)
    assert len(_csv(out.getvalue())) == 3


# --------------------------------------------------------------------------- active assignment


def test_active_strategy_fills_a_study_through_pick_active_item(study_factory):
    study, models, _ = study_factory(mode="both", n_models=3, n_prompts=6, k=2, gold=False,
                                     assignment_strategy="active")
    result = ratings_simulate(study=study, panelists=12, seed=5)
    assert result.items_short == 0
    assert result.assignments == StudyItem.objects.filter(study=study).count() * 2
    assert not StudyItem.objects.filter(study=study, n_done__lt=2).exists()


def test_dashboard_and_leaderboard_show_the_same_rater_quality(filled):
    """One implementation (ratings.quality): the same panelist has one r, excluded or not."""
    from ratings.quality import panelist_quality

    study, _, _ = filled
    victim = study.panelists.order_by("id").first()
    panelist_exclude(panelist=victim, reason="test")
    board = rs.leaderboard_compute(study=study)
    dashboard = {q.panelist.pk: q for q in panelist_quality(study=study)}
    assert board.raters.lowest
    for row in board.raters.lowest:
        # the board passes its own arrays in (no second fetch); rows may come in another order, so the sums
        # may differ in the last bits — never in what either page shows
        assert row.consensus_r == pytest.approx(dashboard[row.id].agreement_r, rel=1e-12, abs=1e-12)
        assert f"{row.consensus_r:.2f}" == f"{dashboard[row.id].agreement_r:.2f}"
        assert (row.gold_n, row.gold_pass_rate, row.flagged) == (dashboard[row.id].gold_n,
                                                                 dashboard[row.id].gold_pass_rate,
                                                                 dashboard[row.id].flagged)
    assert dashboard[victim.pk].agreement_r is not None  # an excluded panelist is still measured
    included = [q.agreement_r for q in dashboard.values() if not q.panelist.excluded and q.agreement_r is not None]
    assert board.raters.median_consensus_r == pytest.approx(float(np.median(included)))
