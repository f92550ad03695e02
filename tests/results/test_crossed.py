"""ratings/results/crossed.py against simulated panels with a known truth, and every degenerate case of issue 11."""

from __future__ import annotations

import numpy as np
import pytest

from ratings.results import crossed as cr
from ratings.results.simulation import CrossedPanel, crossed_truth, simulate_crossed

RANDOM, PANEL = cr.ESTIMAND_RANDOM, cr.ESTIMAND_PANEL


def _balanced(*, n_prompts: int, n_raters: int, k: int, n_models: int, rng, scores_of):
    items = np.arange(n_prompts * n_models)
    item = np.repeat(items, k)
    prompt, model = item // n_models, item % n_models
    rater = np.argsort(rng.random((items.size, n_raters)), axis=1)[:, :k].reshape(-1)
    return scores_of(model, prompt, rater), model, prompt, rater


def _results(y, m, p, r, n_models):
    return cr.criterion_results(scores=y, model=m, prompt=p, rater=r, n_models=n_models)


# --------------------------------------------------------------------------- the estimators


def test_adjusted_means_are_the_least_squares_fit_with_rater_and_prompt_effects():
    """The normalized mean = mean of y − b̂_rater, b̂ from y ~ model + prompt + rater (one rating per image)."""
    rng = np.random.default_rng(0)
    n_p, n_r, n_m = 30, 8, 4
    lenient = rng.normal(0, 1, n_r)
    y, m, p, r = _balanced(n_prompts=n_p, n_raters=n_r, k=1, n_models=n_m, rng=rng,
                           scores_of=lambda m, p, r: 5 + 0.5 * m + lenient[r] + rng.normal(0, 1, m.size))
    d = cr.design(scores=y, model=m, prompt=p, rater=r, n_models=n_m)
    w = cr.adjusted_weights(d)
    x = np.hstack([np.eye(n_m)[m], np.eye(n_p)[p], np.eye(n_r)[r]])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    b = beta[n_m + n_p:]
    b -= np.bincount(r, minlength=n_r) / y.size @ b
    expect = np.bincount(m, weights=y - b[r]) / np.bincount(m)
    assert np.allclose(y @ w, expect)
    # unbiased for the model effects: each model's weights sum to 1 on its own ratings and 0 on the others'
    sums = np.stack([[w[m == a, j].sum() for a in range(n_m)] for j in range(n_m)])
    assert np.allclose(sums, np.eye(n_m))
    # a difference puts zero net weight on every rater and every prompt: leniency and difficulty cancel
    dw = w[:, 0] - w[:, 1]
    assert np.allclose(np.bincount(r, weights=dw), 0) and np.allclose(np.bincount(p, weights=dw), 0)


def test_variance_components_recover_a_known_crossed_design():
    rng = np.random.default_rng(1)
    n_p, n_r, n_m = 120, 12, 4
    sd = {"p": 0.8, "r": 0.7, "pm": 0.5, "rm": 0.4, "e": 1.0}
    a_p, b_r = rng.normal(0, sd["p"], n_p), rng.normal(0, sd["r"], n_r)
    g, c = rng.normal(0, sd["pm"], (n_p, n_m)), rng.normal(0, sd["rm"], (n_r, n_m))
    y, m, p, r = _balanced(n_prompts=n_p, n_raters=n_r, k=3, n_models=n_m, rng=rng,
                           scores_of=lambda m, p, r: a_p[p] + b_r[r] + g[p, m] + c[r, m] + rng.normal(0, sd["e"], m.size))
    comps = cr.variance_components(cr.design(scores=y, model=m, prompt=p, rater=r, n_models=n_m))
    truth = np.array([sd[k] ** 2 for k in ("p", "r", "pm", "rm", "e")])
    # one draw of 120 prompts and 12 raters: the sample variances of the drawn effects are the target
    sample = np.array([a_p.var(), b_r.var(), g.var(), c.var(), sd["e"] ** 2])
    assert np.allclose(comps.variance, sample, atol=0.12, rtol=0.35), (comps.variance, sample, truth)
    # d.f. of each estimate: the levels' d.f. (raters: 11; taste: 11 × 3) times (σ² / (σ² + within / n̄))²,
    # the share of a level mean's spread that is the component (Satterthwaite on the difference of mean squares)
    # (within: the residual and the other components as far as they are not crossed with the factor)
    v = comps.variance
    d = cr.design(scores=y, model=m, prompt=p, rater=r, n_models=n_m)
    lv = {t: cr.groups(d, t) for t in cr._SUBSETS}
    cross = lambda inner, outer: cr._crossing(lv, inner=frozenset(inner), outer=frozenset(outer))  # noqa: E731
    assert cross("pm", "rm") == pytest.approx(2 / 11)  # an image reaches 3 of the 12 (rater, its model) levels
    assert 0.15 < cross("p", "rm") < 11 / 47 + 1e-9  # a prompt's 4 images × 3 raters: at most 12 of 48
    n_bar_r, n_bar_rm = y.size / n_r, y.size / (n_r * n_m)
    share_r = v[1] / (v[1] + (v[4] + v[0] * (1 - cross("p", "r")) + v[2] * (1 - cross("pm", "r"))
                              + v[3] * (1 - cross("rm", "r"))) / n_bar_r)
    share_rm = v[3] / (v[3] + (v[4] + v[0] * (1 - cross("p", "rm")) + v[2] * (1 - cross("pm", "rm"))) / n_bar_rm)
    assert comps.df[1] == pytest.approx((n_r - 1) * share_r**2, rel=0.05)
    assert comps.df[3] == pytest.approx((n_r - 1) * 3 * share_rm**2, rel=0.05)
    assert comps.df[3] < (n_r - 1) * 3 * 0.9  # 30 ratings per taste level: fewer than 33


def test_a_factor_with_one_rating_per_level_joins_the_residual():
    """Each image rated once: prompt × model cannot be told from the residual (same weights in every
    contrast), so its variance is counted as residual and never gets the few d.f. of a confounded split."""
    rng = np.random.default_rng(3)
    y, m, p, r = _balanced(n_prompts=80, n_raters=6, k=1, n_models=4, rng=rng,
                           scores_of=lambda m, p, r: 0.5 * m + rng.normal(0, 0.7, (80, 4))[p, m] + rng.normal(0, 1, m.size))
    comps = cr.variance_components(cr.design(scores=np.round(y), model=m, prompt=p, rater=r, n_models=4))
    assert comps.variance[2] == 0.0 and comps.variance[4] > 0.7**2 + 0.5


@pytest.mark.slow
@pytest.mark.parametrize(("n_prompts", "n_raters", "k"), [(30, 3, 3), (30, 12, 1)])
def test_coverage_of_means_and_differences_near_nominal(n_prompts, n_raters, k):
    """The validation's generative model (taste SD 0.3 included), 40 studies: 95% intervals cover the truth
    of both estimands near 95% (the benchmark runs 500 studies per setting)."""
    panel = CrossedPanel()
    truth = crossed_truth(panel)[0]
    pairs = [(a, b) for a in range(5) for b in range(a + 1, 5)]
    hits = {key: [] for key in ("mean", "norm", "diff", "panel_mean", "panel_diff")}
    for s in range(40):
        st = simulate_crossed(panel=panel, n_prompts=n_prompts, n_raters=n_raters, k=k, rng=np.random.default_rng(s))
        res = _results(st.score[0], st.model, st.prompt, st.rater, 5)
        d_true = np.array([truth[a] - truth[b] for a, b in pairs])
        d_panel = np.array([st.truth_panel[0][a] - st.truth_panel[0][b] for a, b in pairs])
        rr, pr = res[RANDOM], res[PANEL]
        hits["mean"].append((rr.mean_ci[0] <= truth) & (truth <= rr.mean_ci[1]))
        hits["norm"].append((rr.normalized_ci[0] <= truth) & (truth <= rr.normalized_ci[1]))
        hits["diff"].append((rr.diff_ci[0] <= d_true) & (d_true <= rr.diff_ci[1]))
        hits["panel_mean"].append((pr.mean_ci[0] <= st.truth_panel[0]) & (st.truth_panel[0] <= pr.mean_ci[1]))
        hits["panel_diff"].append((pr.diff_ci[0] <= d_panel) & (d_panel <= pr.diff_ci[1]))
    for key, h in hits.items():
        assert 0.88 <= np.mean(h) <= 0.995, (key, np.mean(h))


@pytest.mark.slow
def test_a_prompt_only_interval_would_fail_the_same_check():
    """The test above can fail: dropping the rater terms (as a prompts-only analysis does) under-covers
    the new-raters truth with three raters."""
    panel = CrossedPanel()
    truth = crossed_truth(panel)[0]
    hits = []
    for s in range(30):
        st = simulate_crossed(panel=panel, n_prompts=30, n_raters=3, k=3, rng=np.random.default_rng(100 + s))
        res = _results(st.score[0], st.model, st.prompt, st.rater, 5)[PANEL]  # raters fixed
        hits.append((res.mean_ci[0] <= truth) & (truth <= res.mean_ci[1]))
    assert np.mean(hits) < 0.8


def test_a_clear_difference_is_found_and_the_rank_follows_it():
    rng = np.random.default_rng(5)
    q = np.array([7.0, 5.5, 5.4, 4.0])
    y, m, p, r = _balanced(n_prompts=40, n_raters=6, k=2, n_models=4, rng=rng,
                           scores_of=lambda m, p, r: np.clip(np.rint(q[m] + rng.normal(0, 1, m.size)), 1, 10))
    res = _results(y, m, p, r, 4)[RANDOM]
    verdict = dict(zip(res.pairs, res.verdict, strict=True))
    assert verdict[(0, 1)] == "a" and verdict[(0, 3)] == "a" and verdict[(1, 3)] == "a"
    assert verdict[(1, 2)] == "unclear"
    assert list(res.rank) == [1, 2, 2, 4]
    assert res.better_than[0] == [1, 2, 3] and res.better_than[3] == []


# --------------------------------------------------------------------------- degenerate inputs (issue 11)


def _panel_of(n_raters: int, n_prompts: int, n_models: int = 3, k: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    k = k or n_raters
    q = np.linspace(6.5, 4.5, n_models)
    return _balanced(n_prompts=n_prompts, n_raters=n_raters, k=k, n_models=n_models, rng=rng,
                     scores_of=lambda m, p, r: np.clip(np.rint(q[m] + rng.normal(0, 2.5, m.size)), 1, 10))


@pytest.mark.parametrize("n_raters", [1, 2])
def test_one_or_two_raters_give_no_new_rater_interval_but_a_panel_one(n_raters):
    """Two real panelists once gave '5.44 [−3.11–12.07]' (a 1-d.f. t): now no interval for new raters."""
    y, m, p, r = _panel_of(n_raters, 12)
    res = _results(y, m, p, r, 3)
    rand, pan = res[RANDOM], res[PANEL]
    assert not rand.raters_estimable
    assert np.all(np.isnan(rand.mean_ci[0])) and np.all(np.isnan(rand.diff_ci[0]))
    assert list(rand.rank) == [0, 0, 0] and set(rand.verdict) == {"too few"}
    assert np.all(~np.isnan(rand.mean))  # the means are still shown
    assert pan.raters_estimable
    assert np.all((pan.mean_ci[0] >= 1) & (pan.mean_ci[1] <= 10) & (pan.mean_ci[0] < pan.mean_ci[1]))


def test_a_model_with_one_rating_of_ten_is_too_few_not_rank_one():
    y, m, p, r = _panel_of(3, 12)
    y, m, p, r = np.append(y, 10), np.append(m, 3), np.append(p, 0), np.append(r, 0)
    res = _results(y, m, p, r, 4)[RANDOM]
    assert res.mean[3] == 10 and res.n_ratings[3] == 1 and not res.enough[3]
    assert np.isnan(res.mean_ci[0][3]) and res.rank[3] == 0
    assert all(v == "too few" for (a, b), v in zip(res.pairs, res.verdict, strict=True) if 3 in (a, b))
    assert res.enough[:3].all() and (res.rank[:3] >= 1).all()


@pytest.mark.parametrize("n_prompts", [1, 2])
def test_one_or_two_prompts_are_too_few(n_prompts):
    """One prompt gave zero-width intervals and strict ranks; two gave a '95%' interval over 3 patterns."""
    y, m, p, r = _panel_of(5, n_prompts, k=5)
    res = _results(y, m, p, r, 3)
    for est in (RANDOM, PANEL):
        assert not res[est].enough.any()
        assert np.all(np.isnan(res[est].mean_ci[0])) and list(res[est].rank) == [0, 0, 0]


def test_a_pilot_with_one_rating_per_model_is_too_few():
    """A pilot once showed '5.00 [5.00–5.00] rank 1' against '1.00 [1.00–1.00] rank 2'."""
    res = _results(np.array([5.0, 1.0]), np.array([0, 1]), np.array([0, 0]), np.array([0, 0]), 2)
    for est in (RANDOM, PANEL):
        assert list(res[est].mean) == [5.0, 1.0]
        assert np.all(np.isnan(res[est].mean_ci[0])) and list(res[est].rank) == [0, 0]
        assert res[est].verdict == ["too few"]


def test_intervals_never_leave_the_scale_even_at_its_ends():
    """Three raters, ten prompts, one model always 10, one always 1, one in between."""
    rng = np.random.default_rng(3)
    q = np.array([10.0, 1.0, 5.0])
    y, m, p, r = _balanced(n_prompts=10, n_raters=3, k=3, n_models=3, rng=rng,
                           scores_of=lambda m, p, r: np.clip(np.rint(q[m] + rng.normal(0, 3, m.size) * (m == 2)), 1, 10))
    for res in _results(y, m, p, r, 3).values():
        for lo, hi in (res.mean_ci, res.normalized_ci):
            assert np.all((lo >= 1) & (hi <= 10))
        assert np.all((res.diff_ci[0] >= -9) & (res.diff_ci[1] <= 9))
        assert res.verdict[0] == "a"  # 10 vs 1


def test_identical_scores_still_get_a_nonzero_interval():
    """Integer scores carry at least their rounding: a board of identical 5s is no zero-width certainty."""
    y, m, p, r = _panel_of(4, 10)
    res = _results(np.full(y.size, 5.0), m, p, r, 3)[RANDOM]
    assert np.all(res.mean_ci[1] - res.mean_ci[0] > 0.05)
    assert set(res.verdict) == {"unclear"} and list(res.rank) == [1, 1, 1]


def test_empty_single_model_and_unrated_model_do_not_crash():
    empty = _results(np.zeros(0), np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), 3)
    assert np.all(np.isnan(empty[RANDOM].mean)) and empty[RANDOM].verdict == ["too few"] * 3
    y, m, p, r = _panel_of(3, 10, n_models=1)
    one = _results(y, m, p, r, 1)[RANDOM]
    assert one.pairs == [] and one.rank[0] == 1 and not np.isnan(one.mean_ci[0][0])
    y, m, p, r = _panel_of(3, 10, n_models=2)
    gap = _results(y, m, p, r, 3)[RANDOM]  # model 2 of 3 never rated
    assert np.isnan(gap.mean[2]) and gap.rank[2] == 0 and gap.verdict[1:] == ["too few", "too few"]


def test_this_panel_is_narrower_than_new_raters_with_three_raters():
    y, m, p, r = _panel_of(3, 30)
    res = _results(y, m, p, r, 3)
    width = lambda ci: np.mean(ci[1] - ci[0])  # noqa: E731
    assert width(res[PANEL].mean_ci) < width(res[RANDOM].mean_ci)


def test_many_raters_take_conjugate_gradients_with_the_dense_solution(monkeypatch):
    """Above _DENSE_RATERS the rater system is solved by CG on the operator (no R × R matrix): the same
    weights as the dense Cholesky solve, and as the minimum-norm fallback for a disconnected design."""
    rng = np.random.default_rng(5)
    n, n_m, n_p, n_r = 6_000, 4, 150, 500
    m, p, r = rng.integers(0, n_m, n), rng.integers(0, n_p, n), rng.integers(0, n_r, n)
    y = np.clip(np.round(5 + 0.4 * m + rng.normal(0, 1, n_p)[p] + rng.normal(0, 1, n_r)[r] + rng.normal(size=n)), 1, 10)
    d = cr.design(scores=y, model=m, prompt=p, rater=r, n_models=n_m)
    monkeypatch.setattr(cr, "_DENSE_RATERS", 100)
    by_cg = cr.adjusted_weights(d)
    monkeypatch.setattr(cr, "_DENSE_RATERS", 10_000)
    dense = cr.adjusted_weights(d)
    assert np.allclose(by_cg, dense, rtol=0, atol=1e-9 * np.abs(dense).max())
    # two panels that never rate the same prompt: CG cannot converge there, the dense fallback answers
    half = r < n_r // 2
    p2 = np.where(half, p % (n_p // 2), n_p // 2 + p % (n_p // 2))
    d2 = cr.design(scores=y, model=m, prompt=p2, rater=r, n_models=n_m)
    monkeypatch.setattr(cr, "_DENSE_RATERS", 100)
    w_cg = cr.adjusted_weights(d2)
    monkeypatch.setattr(cr, "_DENSE_RATERS", 10_000)
    assert np.allclose(w_cg, cr.adjusted_weights(d2), atol=1e-9)


def test_criteria_rated_in_the_same_answers_share_one_layout():
    rng = np.random.default_rng(6)
    y, m, p, r = _balanced(n_prompts=20, n_raters=6, k=2, n_models=3, rng=rng,
                           scores_of=lambda m, p, r: 5 + m + rng.normal(0, 1, m.size))
    cache = cr.LayoutCache()
    first = cr.criterion_results(scores=np.round(y), model=m, prompt=p, rater=r, n_models=3, cache=cache)
    again = cr.criterion_results(scores=np.round(y[::-1]), model=m, prompt=p, rater=r, n_models=3, cache=cache)
    alone = cr.criterion_results(scores=np.round(y[::-1]), model=m, prompt=p, rater=r, n_models=3)
    d = cr.design(scores=y, model=m, prompt=p, rater=r, n_models=3)
    assert cache.get(d) is cache.get(cr.design(scores=y + 1, model=m, prompt=p, rater=r, n_models=3))
    assert cache.get(d) is not cache.get(cr.design(scores=y, model=m, prompt=p[::-1], rater=r, n_models=3))
    # the cached layout changes nothing: the same numbers as a fresh fit, and other scores give other means
    for e in (RANDOM, PANEL):
        assert np.allclose(again[e].mean_ci[0], alone[e].mean_ci[0], equal_nan=True)
        assert np.allclose(again[e].diff_ci[1], alone[e].diff_ci[1], equal_nan=True)
    assert not np.allclose(first[RANDOM].mean, again[RANDOM].mean)


def test_crossing_is_one_when_every_rater_rates_every_image_and_zero_when_each_image_once():
    rng = np.random.default_rng(8)
    full = _balanced(n_prompts=15, n_raters=3, k=3, n_models=4, rng=rng, scores_of=lambda m, p, r: 5.0 + 0 * m)
    once = _balanced(n_prompts=15, n_raters=3, k=1, n_models=4, rng=rng, scores_of=lambda m, p, r: 5.0 + 0 * m)
    for (y, m, p, r), want in ((full, 1.0), (once, 0.0)):
        d = cr.design(scores=y, model=m, prompt=p, rater=r, n_models=4)
        lv = {t: cr.groups(d, t) for t in cr._SUBSETS}
        assert cr._crossing(lv, inner=frozenset("pm"), outer=frozenset("rm")) == pytest.approx(want)
    d = cr.design(scores=full[0], model=full[1], prompt=full[2], rater=full[3], n_models=4)
    lv = {t: cr.groups(d, t) for t in cr._SUBSETS}
    assert cr._crossing(lv, inner=frozenset("p"), outer=frozenset("rm")) == pytest.approx(1.0)
