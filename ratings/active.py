"""Active assignment: give the next rating to where it most shrinks the uncertainty that matters.

Chatbot-Arena style. The leaderboard's question is the order, and an order is settled when every
model's 95% interval is apart from its *neighbours'* in the current ranking (when all neighbours'
intervals are apart, all are: they form a chain). So per criterion only the adjacent pairs of the
ranking count, and each is scored by how settled it is: r = gap / (se_i + se_j) (the two intervals are
apart once r > 1.96). The next rating goes to the least settled pair, to its member with the wider
interval (a rating there shrinks the pair's spread most and moves its observed gap most). This is
LUCB-style (Kalyanakrishnan et al. 2012) with a soft argmax: a pair weighs exp(−κ·r), κ = 12, so
the least settled pair of the least settled criterion dominates, pairs already apart weigh almost
nothing (< e^−23), and several criteria simply add up. A model's value is Σ weight × se over its
(at most two) adjacent pairs per criterion. In ``benchmarks/simulate_panel.py`` this beats the
earlier weighting (unsettledness against the closest rival × variance removed) on both designs.

An item's value is the mean over the images it shows (a pair costs the panelist two); the best
item wins; ties go to the item whose prompt this model has been rated on least (a new prompt
shrinks a prompt-clustered interval faster than another rating of a seen one), then to the item
with the fewest ratings, then to chance. A model with fewer than five ratings in a criterion
comes first; with no data at all it falls back to fewest-ratings-first (balanced).

The scoring core is pure numpy (used by ``benchmarks/simulate_panel.py``); only
``pick_active_item`` touches the database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .types import ItemCandidate

MIN_RATINGS_PER_MODEL = 5  # below this a model's variance is a guess: rate it first
PRIOR_VARIANCE = 4.0  # variance of one 1–10 rating assumed before data (SD 2)
SHARPNESS = 12.0  # κ: a pair's weight is exp(−κ · gap / (se_i + se_j)); large = focus on the least settled pair


@dataclass(frozen=True)
class ModelState:
    """Per model × criterion: n, mean, variance of one rating, variance of the mean."""

    n: np.ndarray  # (M, C)
    mean: np.ndarray  # (M, C)
    var: np.ndarray  # (M, C)
    mean_var: np.ndarray  # (M, C); cluster-robust over prompts when per-prompt sums are known


def state_from_sums(*, n, total, total_sq) -> ModelState:
    """ModelState from counts, sums and sums of squares (as one GROUP BY query returns them)."""
    n = np.asarray(n, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    total_sq = np.asarray(total_sq, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        var = np.where(n > 1, (total_sq - n * mean**2) / (n - 1), np.nan)
    # shrink towards the prior so two identical ratings don't claim zero variance
    var = np.where(np.isnan(var), PRIOR_VARIANCE, (np.nan_to_num(var) * n + PRIOR_VARIANCE * 2) / (n + 2))
    return ModelState(n=n, mean=mean, var=var, mean_var=var / np.maximum(n, 1))


def state_from_prompt_sums(*, n, total, total_sq) -> ModelState:
    """ModelState from per-prompt counts and sums (M × C × P).

    The variance of the mean is then cluster-robust over prompts (as the leaderboard's
    prompt bootstrap sees it): ratings of one prompt are correlated, so piling more ratings
    on the same prompts settles less than the rating count suggests. Without this a model
    can look settled here while its reported interval still overlaps a rival's.
    """
    n = np.asarray(n, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    base = state_from_sums(n=n.sum(-1), total=total.sum(-1), total_sq=np.asarray(total_sq, dtype=np.float64).sum(-1))
    n_mc = np.maximum(base.n, 1)
    resid = total - np.nan_to_num(base.mean)[..., None] * n
    n_prompts = (n > 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cluster = (resid**2).sum(-1) / n_mc**2 * n_prompts / np.maximum(n_prompts - 1, 1)
    mean_var = np.where(n_prompts >= 2, np.maximum(cluster, base.mean_var), base.mean_var)
    return ModelState(n=base.n, mean=base.mean, var=base.var, mean_var=mean_var)


def model_priority(state: ModelState) -> np.ndarray:
    """Value (M,) of one more rating of each model, summed over criteria (see module doc)."""
    n, mean = state.n, state.mean
    n_models, n_crit = n.shape
    if n_models < 2:
        return np.ones(n_models)
    se = np.sqrt(state.mean_var)
    value = np.zeros(n_models)
    for c in range(n_crit):
        rated = np.flatnonzero(np.isfinite(mean[:, c]))
        if rated.size < 2:
            continue
        order = rated[np.argsort(mean[rated, c], kind="stable")]
        lo, hi = order[:-1], order[1:]  # adjacent pairs of the current ranking
        settled = (mean[hi, c] - mean[lo, c]) / (se[lo, c] + se[hi, c])
        weight = np.exp(-SHARPNESS * settled)
        np.add.at(value, lo, weight * se[lo, c])
        np.add.at(value, hi, weight * se[hi, c])
    # a model with too few ratings has an unknown variance: always worth rating first
    starved = (n < MIN_RATINGS_PER_MODEL).any(axis=1)
    return np.where(starved, np.inf, value)


def choose(*, priority: np.ndarray, candidate_models: list[tuple[int, ...]], candidate_n: list[int],
           rng: random.Random | None = None, candidate_cover: list[int] | None = None) -> int | None:
    """Index of the best candidate: highest value per image shown (a pair costs two), then the
    fewest earlier ratings of its model(s) on its prompt (``candidate_cover``, when known), then
    the fewest ratings of the item, then chance."""
    if not candidate_models:
        return None
    rng = rng or random.Random()
    values = [float(np.mean([priority[m] for m in models])) for models in candidate_models]
    best = max(values)
    tied = [i for i, v in enumerate(values) if v == best or (np.isinf(best) and np.isinf(v))]
    if candidate_cover is not None:
        least = min(candidate_cover[i] for i in tied)
        tied = [i for i in tied if candidate_cover[i] == least]
    fewest = min(candidate_n[i] for i in tied)
    return rng.choice([i for i in tied if candidate_n[i] == fewest])


def pick_active_item(*, study, panelist, candidates: list[ItemCandidate]) -> ItemCandidate | None:
    """The candidate whose rating most shrinks the uncertainty that still matters (see module doc)."""
    if not candidates:
        return None
    # Not a cycle: the scoring core above stays importable without Django (simulation, benchmarks).
    from .selectors import model_rating_sums

    sums = model_rating_sums(study=study)
    model_ids = sorted({m for c in candidates for m in c.model_ids} | set(sums.model_ids))
    index = {m: i for i, m in enumerate(model_ids)}
    crit_index = {c: j for j, c in enumerate(sums.criterion_ids)}
    prompt_index = {p: k for k, p in enumerate(sums.prompt_ids)}
    shape = (len(model_ids), max(len(crit_index), 1), max(len(prompt_index), 1))
    n, total, total_sq = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for (model_id, crit_id, prompt_id), (cnt, s, s2) in sums.cells.items():
        at = (index[model_id], crit_index[crit_id], prompt_index[prompt_id])
        n[at], total[at], total_sq[at] = cnt, s, s2
    if n.sum() == 0:
        # no data yet: balanced coverage
        fewest = min(c.n_ratings for c in candidates)
        return random.choice([c for c in candidates if c.n_ratings == fewest])
    priority = model_priority(state_from_prompt_sums(n=n, total=total, total_sq=total_sq))
    # ratings of (model, prompt): an answer scores every criterion, so take the largest count
    seen = n.max(axis=1)
    cover = [int(sum(seen[index[m], prompt_index[c.prompt_id]] for m in c.model_ids))
             if c.prompt_id in prompt_index else 0 for c in candidates]
    pick = choose(
        priority=priority,
        candidate_models=[tuple(index[m] for m in c.model_ids) for c in candidates],
        candidate_n=[c.n_ratings for c in candidates],
        candidate_cover=cover,
    )
    return None if pick is None else candidates[pick]
