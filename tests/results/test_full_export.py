"""leaderboard-full.csv and ``leaderboard --format full`` (issue 17, point 3): the whole board in long form.

Every section is checked against the board it came from and against the two narrow files
(``leaderboard.csv``, ``differences.csv``), which stay as they are; the page serves it from the latest
snapshot (never computing), and the view and the command write the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.urls import reverse

from ratings import services
from ratings.models import Estimand, Panelist, Study
from ratings.results import selectors as rs
from ratings.results import snapshots
from ratings.results.board import board_from_dict
from ratings.results.export import FULL_HEADER, FULL_SECTIONS, leaderboard_full_rows
from ratings.results.models import BoardSnapshot, SnapshotReason
from ratings.results.services import ratings_simulate

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled(study_factory):
    """Singles and pairs over two prompt categories, rated by a simulated panel of eight."""
    study, models, _ = study_factory(mode="both", n_models=3, n_prompts=8, k=2, gold=False)
    ratings_simulate(study=study, panelists=8, seed=4)
    return Study.objects.get(pk=study.pk), models


def _command(study, fmt: str, **kw) -> str:
    out = io.StringIO()
    call_command("leaderboard", study=study.pk, format=fmt, stdout=out, **kw)
    return out.getvalue()


def _dicts(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def _num(x: str) -> float | None:
    return None if x == "" else float(x)


def test_every_section_carries_what_the_board_has(filled):
    study, models = filled
    board = rs.leaderboard_get(study=study)
    rows = _dicts(_command(study, "full"))
    assert list(rows[0]) == FULL_HEADER
    by = Counter(r["section"] for r in rows)
    assert set(by) <= set(FULL_SECTIONS) and {"overall", "category", "pairs", "win_rates", "differences",
                                                "agreement"} <= set(by)
    n_crit, n_models = len(board.criteria), len(board.models)
    assert by["overall"] == n_crit * n_models
    assert by["differences"] == n_crit * n_models * (n_models - 1) // 2
    assert by["agreement"] == n_crit
    assert by["pairs"] == n_models * len(board.pairs.by_criterion)
    cells = sum(1 for per in board.by_category.values() for cs in per.values() for c in cs if c.n)
    assert by["category"] == cells > 0 and len(board.by_category) >= 2

    slug_of = {m.name: m.slug for m in board.models}
    index = {m.name: i for i, m in enumerate(board.models)}
    for r in rows:
        if r["model"]:
            assert r["model_slug"] == slug_of[r["model"]]
        if r["section"] in ("overall", "category", "differences"):
            assert r["estimand"] == board.estimand
        else:
            assert r["estimand"] == ""
        if r["section"] == "category":
            cell = board.by_category[r["category"]][r["criterion"]][index[r["model"]]]
            assert (_num(r["mean"]), int(r["n"]), r["rank"]) == (round(cell.mean, 3), cell.n,
                                                                  "" if cell.rank is None else str(cell.rank))
        if r["section"] == "pairs":
            p = board.pairs.by_criterion[r["criterion"]]
            i = index[r["model"]]
            assert (_num(r["strength"]), _num(r["ci_low"]), _num(r["ci_high"]), int(r["rank"]), int(r["n"])) == (
                round(p.strength[i], 3), round(p.ci_low[i], 3), round(p.ci_high[i], 3), p.rank[i], p.n_pairs[i])
            assert _num(r["ci_low"]) <= _num(r["strength"]) <= _num(r["ci_high"])

    # win rates: both directions of a played pair are there and add up to one (ties count half)
    wins = {(r["criterion"], r["model"], r["model_b"]): (float(r["win_rate"]), int(r["games"]))
            for r in rows if r["section"] == "win_rates"}
    assert wins
    for (crit, a, b), (rate, games) in wins.items():
        back, back_games = wins[(crit, b, a)]
        assert games == back_games > 0 and rate + back == pytest.approx(1.0, abs=0.002)


def test_overall_and_differences_rows_equal_the_narrow_files(filled):
    """The same numbers as leaderboard.csv (one wide row per model) and differences.csv, reshaped."""
    study, _ = filled
    full = _dicts(_command(study, "full"))
    wide = {r["model"]: r for r in _dicts(_command(study, "csv"))}
    overall = [r for r in full if r["section"] == "overall"]
    for r in overall:
        w, k = wide[r["model"]], r["criterion"]
        assert [r["mean"], r["ci_low"], r["ci_high"], r["n"], r["n_prompts"], r["rank"], r["normalized_mean"],
                r["normalized_ci_low"], r["normalized_ci_high"]] == [
            w[f"{k}_mean"], w[f"{k}_ci_low"], w[f"{k}_ci_high"], w[f"{k}_n"], w[f"{k}_n_prompts"], w[f"{k}_rank"],
            w[f"{k}_normalized_mean"], w[f"{k}_normalized_ci_low"], w[f"{k}_normalized_ci_high"]]
    # the models come in the board's order, as the rows of leaderboard.csv
    first = overall[0]["criterion"]
    assert [r["model"] for r in overall if r["criterion"] == first] == list(wide)

    narrow = _dicts(_command(study, "differences"))
    diffs = [r for r in full if r["section"] == "differences"]
    assert len(diffs) == len(narrow)
    for r, d in zip(diffs, narrow, strict=True):
        assert [r["criterion"], r["model"], r["model_b"], r["difference"], r["ci_low"], r["ci_high"],
                r["plain_difference"], r["estimand"]] == [
            d["criterion"], d["model_a"], d["model_b"], d["difference"], d["ci_low"], d["ci_high"],
            d["plain_difference"], d["estimand"]]
        assert d["verdict"] == (r["verdict"] if r["verdict"] in ("a", "b") else "unclear")


def test_the_estimand_switches_scores_and_differences_not_categories(filled):
    study, _ = filled
    assert study.estimand == Estimand.RATERS_RANDOM
    rows = _dicts(_command(study, "full", estimand=Estimand.THIS_PANEL))
    seen = {(r["section"], r["estimand"]) for r in rows if r["estimand"]}
    assert seen == {("overall", "this_panel"), ("differences", "this_panel"), ("category", "raters_random")}
    panel = [r for r in _dicts(_command(study, "differences", estimand=Estimand.THIS_PANEL))]
    assert [r["ci_low"] for r in panel] == [r["ci_low"] for r in rows if r["section"] == "differences"]


def test_the_view_serves_the_snapshot_and_writes_what_the_command_writes(filled, client, settings, monkeypatch,
                                                                        django_user_model):
    study, _ = filled
    settings.RESULTS_COMPUTE_ON_READ = False
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: None)
    client.force_login(django_user_model.objects.create_superuser("boss", "b@x.org", "pw"))
    url = reverse("results:leaderboard_full_csv", args=[study.pk])
    BoardSnapshot.objects.filter(study=study).delete()  # simulate_panel's own refresh made one
    missing = client.get(url)
    assert missing.status_code == 503 and missing["Retry-After"]

    first = snapshots.board_snapshot_refresh(study=study, reason=SnapshotReason.FIRST)

    def boom(**kwargs):
        raise AssertionError("a request computed the board")

    monkeypatch.setattr(snapshots, "leaderboard_compute", boom)
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f"leaderboard-full-{study.pk}-" in response["Content-Disposition"]
    # the file names its snapshot; the headers say when it was taken and what arrived since
    assert response["Content-Disposition"].endswith(f'-snapshot-{first.pk}.csv"')
    assert response["X-Evalsite-Snapshot"] == str(first.pk)
    assert response["X-Evalsite-Snapshot-Taken"] == first.created_at.isoformat(timespec="seconds")
    assert response["X-Evalsite-Snapshot-Ratings"] == str(first.ratings_count)
    assert response["X-Evalsite-New-Ratings"] == "0"
    body = b"".join(response.streaming_content).decode()
    assert body == _command(study, "full")  # one writer: the command's rows, byte for byte
    with_bom = b"".join(client.get(url + "?bom=1").streaming_content).decode()
    assert with_bom == "\ufeff" + body

    monkeypatch.undo()
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: None)
    services.panelist_exclude(panelist=Panelist.objects.filter(study=study).first(), reason="test")
    second = snapshots.board_snapshot_refresh(study=study, reason=SnapshotReason.EXCLUSION)
    assert second.pk != first.pk
    latest = b"".join(client.get(url).streaming_content).decode()
    past_response = client.get(f"{url}?snapshot={first.pk}")
    past = b"".join(past_response.streaming_content).decode()
    assert past == body != latest
    assert past_response["X-Evalsite-Snapshot"] == str(first.pk) != str(second.pk)
    header, rows = leaderboard_full_rows(board=board_from_dict(second.board))
    assert _dicts(latest) == [dict(zip(header, map(str, r), strict=True)) for r in rows]

    page = client.get(reverse("results:leaderboard", args=[study.pk])).content.decode()
    assert f'href="{url}?estimand=raters_random"' in page  # linked beside leaderboard.csv and differences.csv


def test_a_study_without_pairs_or_ratings_still_writes_a_header(study_factory):
    study, _, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    rows = list(csv.reader(io.StringIO(_command(study, "full"))))
    assert rows[0] == FULL_HEADER
    assert {r[0] for r in rows[1:]} <= {"overall", "differences", "agreement"}
    assert all(r[FULL_HEADER.index("n")] == "0" for r in rows[1:] if r[0] in ("overall", "agreement"))
    assert all(r[FULL_HEADER.index("alpha")] == "" for r in rows[1:] if r[0] == "agreement")
