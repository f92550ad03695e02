"""Active assignment: the pure scoring core, and the fast version of the benchmark's claim."""

from __future__ import annotations

import random

import numpy as np

from ratings import active, selectors
from ratings.results.simulation import Panel, ratings_to_separation
from ratings.types import ItemCandidate


def _state(means, n, sd=1.5):
    n = np.asarray(n, float)[:, None]
    means = np.asarray(means, float)[:, None]
    total = means * n
    total_sq = (sd**2 + means**2) * n  # population variance sd²
    return active.state_from_sums(n=n, total=total, total_sq=total_sq)


def test_a_model_without_enough_ratings_comes_first():
    priority = active.model_priority(_state([5, 6, 7], [50, 2, 50]))
    assert np.isinf(priority[1]) and np.isfinite(priority[0])


def test_settled_models_lose_priority_to_a_close_race():
    # model 0 is far below; models 1 and 2 overlap
    priority = active.model_priority(_state([2.0, 6.0, 6.1], [40, 40, 40]))
    assert priority[0] < 0.01 * min(priority[1], priority[2])


def test_only_neighbours_in_the_ranking_count():
    # 0 and 3 are far from their only neighbours: nothing to settle there, whatever their n
    priority = active.model_priority(_state([2.0, 5.0, 5.05, 8.0], [10, 40, 40, 10]))
    assert max(priority[0], priority[3]) < 1e-6 * min(priority[1], priority[2])


def test_the_least_settled_pair_comes_first_and_its_wider_member_first():
    # pairs (0, 1) and (2, 3) both overlap; (0, 1) is the less settled; 1 has the wider interval
    priority = active.model_priority(_state([3.0, 3.3, 6.0, 6.6], [40, 20, 40, 40]))
    assert int(np.argmax(priority)) == 1
    assert priority[0] > max(priority[2], priority[3])
    # the same holds with a second criterion where everything is settled: it adds (almost) nothing
    two = _state([3.0, 3.3, 6.0, 6.6], [40, 20, 40, 40])
    settled = _state([1.0, 4.0, 7.0, 10.0], [40, 20, 40, 40])
    both = active.ModelState(*(np.concatenate([getattr(two, f), getattr(settled, f)], axis=1)
                               for f in ("n", "mean", "var", "mean_var")))
    np.testing.assert_allclose(active.model_priority(both), priority, rtol=1e-6)


def test_choose_prefers_value_then_fewest_ratings_and_prices_pairs_per_image():
    priority = np.array([0.0, 1.0, 1.0])
    pick = active.choose(priority=priority, candidate_models=[(0,), (1,), (2,)], candidate_n=[0, 3, 1],
                         rng=random.Random(0))
    assert pick == 2  # 1 and 2 tie on value; 2 has fewer ratings
    # a pair with a settled model is worth less per image than a single of an unsettled one
    pick = active.choose(priority=priority, candidate_models=[(0, 1), (1,)], candidate_n=[0, 5])
    assert pick == 1
    assert active.choose(priority=priority, candidate_models=[], candidate_n=[]) is None
    # with the prompt coverage known, a prompt the model has not been rated on goes first
    pick = active.choose(priority=priority, candidate_models=[(1,), (1,), (0,)], candidate_n=[0, 4, 0],
                         candidate_cover=[2, 0, 0], rng=random.Random(0))
    assert pick == 1


def test_pick_active_item_prefers_a_prompt_the_model_was_not_rated_on(monkeypatch):
    # models 11 and 12 neck and neck (12 on fewer prompts: the wider interval), 13 far above
    scores = {11: [4, 6, 5, 5, 6, 4, 5, 5], 12: [5, 6, 4, 6, 5, 5], 13: [9, 9, 10, 9, 9, 10, 9, 9]}
    cells = {(m, 1, 100 + k): (1, float(y), float(y * y)) for m, ys in scores.items() for k, y in enumerate(ys)}
    sums = selectors.ModelRatingSums(model_ids=[11, 12, 13], criterion_ids=[1],
                                     prompt_ids=sorted({c[2] for c in cells}), cells=cells)
    monkeypatch.setattr(selectors, "model_rating_sums", lambda *, study: sums)
    cands = [
        ItemCandidate(kind="single", generation_ids=(1,), model_ids=(12,), prompt_id=100, n_ratings=0),  # seen prompt
        ItemCandidate(kind="single", generation_ids=(2,), model_ids=(12,), prompt_id=107, n_ratings=3),  # new prompt
        ItemCandidate(kind="single", generation_ids=(3,), model_ids=(13,), prompt_id=108, n_ratings=0),
        ItemCandidate(kind="pair", generation_ids=(4, 5), model_ids=(11, 13), prompt_id=108, n_ratings=0),
    ]
    assert active.pick_active_item(study=None, panelist=None, candidates=cands) == cands[1]


def test_pick_active_item_falls_back_to_fewest_ratings_without_data(study_factory):
    study, models, prompts = study_factory(mode="single", n_models=3, n_prompts=2, k=1)
    cands = [ItemCandidate(kind="single", generation_ids=(i,), model_ids=(models[i % 3].pk,), prompt_id=prompts[0].pk,
                           n_ratings=n) for i, n in enumerate([2, 0, 1])]
    assert active.pick_active_item(study=study, panelist=None, candidates=cands) == cands[1]
    assert active.pick_active_item(study=study, panelist=None, candidates=[]) is None


def test_active_needs_fewer_ratings_than_balanced_fast_version():
    """Fast version of benchmarks/simulate_panel.py, one close race (100 runs there, 6 here; ≥ 30% there,
    ≥ 20% here)."""
    panel = Panel(quality=(3.0, 4.6, 6.0, 7.0, 7.5), prompt_sd=0.5, interaction_sd=0.3, rater_offset_sd=0.5)
    bal = [ratings_to_separation(panel=panel, strategy="balanced", seed=50_000 + s) for s in range(6)]
    act = [ratings_to_separation(panel=panel, strategy="active", seed=50_000 + s) for s in range(6)]
    assert np.median(act) <= 0.8 * np.median(bal), (bal, act)


def test_active_needs_fewer_ratings_than_balanced_evenly_spaced_fast_version():
    """Fast version of the benchmark's evenly spaced row (every model has a close neighbour): 20 runs,
    all ratings together. Active saves 25–29% in the benchmark; a balanced-like policy saves ~0%."""
    panel = Panel(quality=(3.0, 4.0, 5.0, 6.0, 7.0), prompt_sd=0.5, interaction_sd=0.3, rater_offset_sd=0.5)
    bal = [ratings_to_separation(panel=panel, strategy="balanced", seed=50_000 + s) for s in range(20)]
    act = [ratings_to_separation(panel=panel, strategy="active", seed=50_000 + s) for s in range(20)]
    assert sum(act) <= 0.85 * sum(bal), (bal, act)
