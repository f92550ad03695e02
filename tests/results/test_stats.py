"""ratings/stats.py against simulated panels with a known truth (fast versions of the benchmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from ratings.results import stats
from ratings.results.simulation import (
    Panel,
    biased_rater_assignment,
    draw_study,
    simulate_balanced,
    simulate_pairs,
    true_means,
)

SEPARATED = Panel(quality=(3.5, 4.5, 5.5, 6.5, 7.5))


def test_means_recover_ranking_at_300_ratings_per_model():
    """Well separated models, 100 prompts × 3 ratings = 300 ratings per model."""
    truth = true_means(panel=SEPARATED, n=100_000)
    for seed in range(5):
        d = simulate_balanced(panel=SEPARATED, n_prompts=100, ratings_per_item=3, n_raters=60,
                              rng=np.random.default_rng(seed))
        tab = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, rater=d.rater, n_models=5,
                                n_resamples=1000, seed=seed)
        assert list(tab.n_ratings) == [300] * 5
        assert list(tab.n_prompts) == [100] * 5
        assert stats.spearman(tab.mean, truth) == 1.0
        assert np.all(tab.ci_low < tab.mean) and np.all(tab.mean < tab.ci_high)
        assert list(tab.rank) == [5, 4, 3, 2, 1]


def test_ci_coverage_near_nominal():
    """60 simulated studies (the benchmark runs ≥ 200): coverage of the true means near 95%."""
    panel = Panel(quality=(4.0, 5.0, 6.0, 7.0, 8.0))
    truth = true_means(panel=panel, n=200_000)
    hits = []
    for seed in range(60):
        d = simulate_balanced(panel=panel, n_prompts=40, ratings_per_item=3, n_raters=30,
                              rng=np.random.default_rng(1000 + seed))
        tab = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, rater=d.rater, n_models=5,
                                n_resamples=1000, seed=seed)
        hits.append((tab.ci_low <= truth) & (truth <= tab.ci_high))
    coverage = float(np.mean(hits))
    assert 0.88 <= coverage <= 0.99, coverage


def test_bootstrap_is_seeded_and_needs_prompts():
    d = simulate_balanced(panel=SEPARATED, n_prompts=20, ratings_per_item=2, n_raters=10, rng=np.random.default_rng(3))
    a = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, seed=7, n_resamples=1000)
    b = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, seed=7, n_resamples=1000)
    c = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, seed=8, n_resamples=1000)
    assert np.array_equal(a.ci_low, b.ci_low)
    assert not np.array_equal(a.ci_low, c.ci_low)
    with pytest.raises(ValueError, match="differ in length"):
        stats.model_means(scores=[5, 6], model=[0], prompt=[0, 1])
    with pytest.raises(ValueError, match="out of range"):
        stats.model_means(scores=[5], model=[3], prompt=[0], n_models=2)


def test_model_without_ratings_is_nan_and_ranked_last():
    tab = stats.model_means(scores=[5, 6, 7, 8], model=[0, 0, 1, 1], prompt=[0, 1, 0, 1], n_models=3,
                            n_resamples=1000)
    assert np.isnan(tab.mean[2]) and tab.n_ratings[2] == 0
    assert tab.rank[2] == 3


def test_uncertainty_rank_ties_overlapping_models():
    # A clearly best; B and C overlap; D clearly worst
    rank = stats.uncertainty_rank(ci_low=[8, 6, 5.5, 2], ci_high=[9, 7, 6.5, 3])
    assert list(rank) == [1, 2, 2, 4]


def _biased_study(seed: int):
    panel = Panel(quality=(6.2, 5.8, 5.4, 5.0, 4.6), rater_offset_sd=0.3)
    rng = np.random.default_rng(seed)
    n_prompts, k, n_raters = 100, 3, 40
    draw = draw_study(panel=panel, n_prompts=n_prompts, n_raters=n_raters, rng=rng)
    biased = np.zeros(n_raters, bool)
    biased[:12] = True  # 30% of raters, strongly harsh, rating mostly the two best models
    draw.raters.offset[biased] -= 3.0
    chosen = biased_rater_assignment(n_models=5, n_prompts=n_prompts, ratings_per_item=k, n_raters=n_raters,
                                     biased=biased, favoured_models={0, 1}, share=0.7, rng=rng)
    d = simulate_balanced(panel=panel, n_prompts=n_prompts, ratings_per_item=k, n_raters=n_raters, rng=rng,
                          draw=draw, rater_choice=chosen)
    return panel, d


def test_normalized_score_survives_biased_raters_where_raw_mean_fails():
    raw_ok = norm_ok = 0
    for seed in range(6):
        panel, d = _biased_study(seed)
        raw = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, n_models=5, n_resamples=1000)
        z = stats.normalize_scores(scores=d.score, rater=d.rater, item=d.item)
        assert z.min() >= 1 and z.max() <= 10
        norm = stats.model_means(scores=z, model=d.model, prompt=d.prompt, n_models=5, n_resamples=1000)
        raw_ok += stats.spearman(raw.mean, panel.quality) == 1.0
        norm_ok += stats.spearman(norm.mean, panel.quality) == 1.0
    assert raw_ok == 0
    assert norm_ok >= 5


def test_rater_effects_find_the_harsh_raters():
    _, d = _biased_study(0)
    eff = stats.rater_effects(scores=d.score, rater=d.rater, item=d.item)
    assert eff.offset[:12].mean() < eff.offset[12:].mean() - 2.0


def test_krippendorff_alpha_perfect_and_random():
    items = np.repeat(np.arange(50), 3)
    raters = np.tile(np.arange(3), 50)
    true = np.random.default_rng(0).integers(1, 11, 50)
    assert stats.krippendorff_interval_alpha(scores=true[items], rater=raters, item=items) == pytest.approx(1.0)
    noise = np.random.default_rng(1).integers(1, 11, items.size)
    assert abs(stats.krippendorff_interval_alpha(scores=noise, rater=raters, item=items)) < 0.15
    assert np.isnan(stats.krippendorff_interval_alpha(scores=[5, 6], rater=[0, 1], item=[0, 1]))


def test_agreement_with_the_panel_flags_a_random_rater():
    """ratings.quality's agreement (the dashboard's and the leaderboard's one implementation)."""
    from ratings.quality import agreement_with_panel

    d = simulate_balanced(panel=SEPARATED, n_prompts=60, ratings_per_item=3, n_raters=10,
                          rng=np.random.default_rng(2))
    scores = d.score.copy()
    rnd = d.rater == 0
    scores[rnd] = np.random.default_rng(9).integers(1, 11, rnd.sum())
    everyone = agreement_with_panel(scores=scores, rater=d.rater, cell=d.item, included=np.ones(scores.size, bool),
                                    n_raters=10)
    assert everyone.r[0] < 0.3
    assert np.all(everyone.r[1:] > 0.5)
    # excluding the random rater: still measured (against the others), and out of everyone's reference
    without = agreement_with_panel(scores=scores, rater=d.rater, cell=d.item, included=~rnd, n_raters=10)
    assert without.r[0] < 0.3 and without.n[0] == everyone.n[0]
    assert np.mean(without.r[1:]) > np.mean(everyone.r[1:])


def test_bradley_terry_recovers_order_with_ties_as_half_wins():
    panel = Panel(quality=(4.0, 5.0, 6.0, 7.0))
    rng = np.random.default_rng(4)
    draw = draw_study(panel=panel, n_prompts=80, n_raters=30, rng=rng)
    pr = simulate_pairs(panel=panel, draw=draw, n_pairs=1500, rng=rng)
    outcome = stats.pair_outcomes(left_score=pr.left_score, right_score=pr.right_score)
    assert set(np.unique(outcome)) <= {0.0, 0.5, 1.0}
    bt = stats.bradley_terry(left_model=pr.left_model, right_model=pr.right_model, outcome=outcome,
                             prompt=pr.prompt, n_models=4, n_resamples=1000)
    assert stats.spearman(bt.strength, panel.quality) == 1.0
    assert bt.strength.mean() == pytest.approx(0.0, abs=1e-9)
    assert np.all(bt.ci_low < bt.strength) and np.all(bt.strength < bt.ci_high)
    played = ~np.isnan(bt.win_rate)
    assert np.allclose((bt.win_rate + bt.win_rate.T)[played], 1.0)
    assert bt.win_rate[3, 0] > 0.8


def test_bradley_terry_all_ties_gives_equal_strengths():
    bt = stats.bradley_terry(left_model=[0, 1, 0, 1], right_model=[1, 0, 1, 0], outcome=[0.5] * 4,
                             prompt=[0, 1, 2, 3], n_resamples=1000)
    assert np.allclose(bt.strength, 0.0)
    with pytest.raises(ValueError, match="two different models"):
        stats.bradley_terry(left_model=[0], right_model=[0], outcome=[1], prompt=[0])


def test_position_bias_detected_only_when_present():
    panel = Panel(quality=(5.0, 5.5, 6.0))
    rng = np.random.default_rng(5)
    draw = draw_study(panel=panel, n_prompts=80, n_raters=30, rng=rng)
    fair = simulate_pairs(panel=panel, draw=draw, n_pairs=2000, rng=rng)
    pb = stats.position_bias(left_score=fair.left_score, right_score=fair.right_score, prompt=fair.prompt)
    assert pb.ci_low <= 0.5 <= pb.ci_high
    assert pb.gap_ci_low <= 0 <= pb.gap_ci_high
    biased = simulate_pairs(panel=panel, draw=draw, n_pairs=2000, rng=rng, left_bonus=0.8)
    pb = stats.position_bias(left_score=biased.left_score, right_score=biased.right_score, prompt=biased.prompt)
    assert pb.ci_low > 0.5 and pb.gap_ci_low > 0 and pb.p_value < 0.001


def test_speed_summary_ignores_missing():
    s = stats.speed_summary(seconds=[1.0, None, 3.0, 2.0])
    assert (s.median, s.mean, s.n) == (2.0, 2.0, 3)
    assert stats.speed_summary(seconds=[None]).n == 0


def test_group_medians_equal_the_median_of_each_group():
    """ratings.quality.group_medians (median seconds per item on the dashboard and the board's rater rows)."""
    import statistics

    from ratings.quality import group_medians

    rng = np.random.default_rng(4)
    keys = rng.integers(0, 40, 900)
    values = rng.integers(0, 60_000, 900)
    got = group_medians(keys=keys, values=values, n_groups=43)  # groups 40-42 have no values
    want = [statistics.median(values[keys == i].tolist()) if (keys == i).any() else np.nan for i in range(43)]
    assert np.allclose(got, want, equal_nan=True)
    assert np.isnan(got[40:]).all()
    assert np.isnan(group_medians(keys=keys[:0], values=values[:0], n_groups=3)).all()
