"""Statistics for the score table: pure functions over numpy arrays (no Django).

Everything here takes integer-coded arrays (model, prompt, rater, item indices
starting at 0) so the same code serves the leaderboard, the active assignment
strategy and the simulation benchmarks. Uncertainty comes from a cluster
bootstrap over *prompts*: ratings of one prompt are correlated (a hard prompt is
hard for every model and every rater), so resampling single ratings would give
intervals that are far too narrow for a fixed suite rated many times.

The bootstrap is vectorised: per-prompt sufficient statistics are aggregated once
(``bincount``) and every resample is a row of multinomial prompt weights, so B
resamples cost one ``(B × P) @ (P × M)`` matrix product, whatever the number of ratings.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import krippendorff
import numpy as np
from scipy import stats as sps

SCALE_MIN = 1.0
SCALE_MAX = 10.0
DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=32)
def prompt_weights(*, n_prompts: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Resample weights (B × P): how often each prompt is drawn in each bootstrap resample.

    Cached (read-only): a leaderboard asks for the same weights for many tables.
    """
    if n_prompts < 1:
        raise ValueError("need at least one prompt to bootstrap")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_prompts, size=(n_resamples, n_prompts))
    draws += np.arange(n_resamples)[:, None] * n_prompts
    w = np.bincount(draws.ravel(), minlength=n_resamples * n_prompts).reshape(n_resamples, n_prompts)
    w = w.astype(np.float64)
    w.flags.writeable = False
    return w


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring resamples where a value is undefined (nan)."""
    alpha = (1.0 - level) / 2.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a model with no data: nan, by design
        lo = np.nanquantile(samples, alpha, axis=0) if samples.size else np.array([])
        hi = np.nanquantile(samples, 1.0 - alpha, axis=0) if samples.size else np.array([])
    return lo, hi


def _as_int(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative indices")
    return arr.astype(np.int64, copy=False)


def _check_lengths(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


# --------------------------------------------------------------------------- means


@dataclass(frozen=True)
class MeanTable:
    """Per model: mean score, bootstrap CI, how many ratings and prompts it rests on."""

    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_ratings: np.ndarray
    n_prompts: np.ndarray
    rank: np.ndarray
    level: float
    n_resamples: int


def model_means(
    *,
    scores,
    model: np.ndarray,
    prompt: np.ndarray,
    n_models: int | None = None,
    n_prompts: int | None = None,
    rater: np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> MeanTable:
    """Mean score per model with a 95% CI from a cluster bootstrap over prompts.

    The mean is the plain mean of the model's ratings; each resample draws P prompts
    with replacement and recomputes every model's mean from the drawn prompts' ratings
    (percentile interval). A model with no ratings gets nan.

    With ``rater`` given, each resample also gets a common shift for the panel's shared
    leniency (see ``rater_shift_sd``), which a prompts-only bootstrap cannot see: with a
    small panel it would otherwise cover the population mean too rarely.
    """
    y = np.asarray(scores, dtype=np.float64)
    m = _as_int("model", model)
    p = _as_int("prompt", prompt)
    _check_lengths(scores=y, model=m, prompt=p)
    n_models = int(n_models if n_models is not None else (m.max() + 1 if m.size else 0))
    n_prompts = int(n_prompts if n_prompts is not None else (p.max() + 1 if p.size else 0))
    if m.size and m.max() >= n_models:
        raise ValueError("model index out of range")
    if p.size and p.max() >= n_prompts:
        raise ValueError("prompt index out of range")
    cell = p * n_models + m
    sums = np.bincount(cell, weights=y, minlength=n_prompts * n_models).reshape(n_prompts, n_models)
    counts = np.bincount(cell, minlength=n_prompts * n_models).reshape(n_prompts, n_models).astype(np.float64)
    total_n = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums.sum(axis=0) / total_n
    if y.size == 0:
        nan = np.full(n_models, np.nan)
        return MeanTable(nan, nan, nan, np.zeros(n_models, int), np.zeros(n_models, int),
                         np.ones(n_models, int), level, n_resamples)
    w = prompt_weights(n_prompts=n_prompts, n_resamples=n_resamples, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ sums) / (w @ counts)
    if n_prompts > 1:
        # the bootstrap variance of a mean over P clusters is (P-1)/P of the unbiased one
        boot = mean + (boot - mean) * np.sqrt(n_prompts / (n_prompts - 1))
    if rater is not None:
        shift_sd = rater_shift_sd(y=y, m=m, p=p, r=_as_int("rater", rater), n_models=n_models, n_prompts=n_prompts)
        # one common panel shift per resample, scaled per model (it moves every model together)
        # σ_m² is estimated from the panel's raters: Student t with (raters − 1) degrees of freedom
        n_raters_seen = int(np.unique(_as_int("rater", rater)).size)
        z = np.random.default_rng([seed, 1]).standard_t(max(n_raters_seen - 1, 1), (n_resamples, 1))
        boot = boot + z * shift_sd[None, :]
    lo, hi = _percentile_interval(boot, level)
    return MeanTable(
        mean=mean,
        ci_low=lo,
        ci_high=hi,
        n_ratings=total_n.astype(np.int64),
        n_prompts=(counts > 0).sum(axis=0).astype(np.int64),
        rank=uncertainty_rank(ci_low=lo, ci_high=hi),
        level=level,
        n_resamples=n_resamples,
    )


def rater_shift_sd(*, y, m, p, r, n_models: int, n_prompts: int) -> np.ndarray:
    """Per model: SD of the mean that the panel's shared leniency adds, beyond what a
    prompt bootstrap already sees.

    A prompt bootstrap treats each rating's rater deviation as independent noise (variance
    σ²/N). But the panel is one sample of raters: its average deviation on a model shifts
    that model's mean with variance σ_m² · Σ_r (n_rm/N_m)², large when a few raters give
    most ratings. σ_m² (raters' spread in how they score model m: leniency and scale use)
    is estimated by method of moments from each rater's mean deviation from the consensus
    on the images they rated (consensus fitted with rater offsets removed).
    """
    n_raters = int(r.max()) + 1
    item = p * n_models + m
    n_items = n_prompts * n_models
    n_g = np.bincount(item, minlength=n_items).astype(np.float64)
    n_r = np.bincount(r, minlength=n_raters).astype(np.float64)
    off = np.zeros(n_raters)
    for _ in range(15):
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.bincount(item, weights=y - off[r], minlength=n_items) / n_g
            off = np.bincount(r, weights=y - t[item], minlength=n_raters) / n_r
        off = np.nan_to_num(off)
        off -= np.average(off, weights=n_r)
    k_item = n_g[item]
    multi = k_item >= 2
    if multi.sum() < 2:
        return np.zeros(n_models)
    resid = (y - t[item] - off[r])[multi]
    sigma_e2 = float(np.mean(resid**2 * k_item[multi] / (k_item[multi] - 1)))
    dev = y - t[item]
    out = np.zeros(n_models)
    for model in range(n_models):
        sel = (m == model) & multi
        if not sel.any():
            continue
        n_rm = np.bincount(r[sel], minlength=n_raters).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            d_rm = np.bincount(r[sel], weights=dev[sel], minlength=n_raters) / n_rm
        seen = n_rm >= 2
        if seen.sum() < 2:
            continue
        shrink = float(np.mean(1.0 - 1.0 / k_item[sel]))  # the rater's own rating is part of the consensus
        sigma_m2 = max(0.0, float(np.var(d_rm[seen])) - sigma_e2 * shrink * float(np.mean(1.0 / n_rm[seen])))
        total = n_rm.sum()
        out[model] = np.sqrt(max(0.0, sigma_m2 * (np.sum((n_rm / total) ** 2) - 1.0 / total)))
    return out


def uncertainty_rank(*, ci_low, ci_high) -> np.ndarray:
    """Rank = 1 + number of models whose lower bound lies above this model's upper bound.

    Models whose intervals overlap share a rank; a model with no data (nan) gets the last rank.
    """
    lo = np.asarray(ci_low, dtype=np.float64)
    hi = np.asarray(ci_high, dtype=np.float64)
    lo_cmp = np.where(np.isnan(lo), -np.inf, lo)
    hi_cmp = np.where(np.isnan(hi), -np.inf, hi)
    return 1 + (lo_cmp[None, :] > hi_cmp[:, None]).sum(axis=1)


# --------------------------------------------------------------------------- normalization


@dataclass(frozen=True)
class RaterEffects:
    """Each rater's fitted leniency (offset on the 1–10 scale) and stretch (1 = as the panel)."""

    offset: np.ndarray
    stretch: np.ndarray
    n_ratings: np.ndarray


def rater_effects(
    *,
    scores,
    rater: np.ndarray,
    item: np.ndarray,
    n_raters: int | None = None,
    n_items: int | None = None,
    prior_ratings: float = 1.0,
    iterations: int = 30,
) -> RaterEffects:
    """Fit y = center_r + stretch_r · (t_item − T) + noise by alternating least squares.

    A rater's location and scale are measured against the *items they rated* (the
    consensus of other raters on the same images), not against their raw mean: a
    harsh rater who happened to see mostly the best model would otherwise have that
    model's quality mistaken for leniency. Both parameters are shrunk towards the
    panel (offset 0, stretch 1) with ``prior_ratings`` pseudo-ratings, so a rater with
    three ratings is barely adjusted. Stretch is clamped to [0.25, 4].
    """
    y = np.asarray(scores, dtype=np.float64)
    r = _as_int("rater", rater)
    g = _as_int("item", item)
    _check_lengths(scores=y, rater=r, item=g)
    n_raters = int(n_raters if n_raters is not None else (r.max() + 1 if r.size else 0))
    n_items = int(n_items if n_items is not None else (g.max() + 1 if g.size else 0))
    offset = np.zeros(n_raters)
    stretch = np.ones(n_raters)
    n_r = np.bincount(r, minlength=n_raters).astype(np.float64)
    n_g = np.bincount(g, minlength=n_items).astype(np.float64)
    if y.size == 0:
        return RaterEffects(offset, stretch, n_r.astype(np.int64))
    grand = y.mean()
    k = float(prior_ratings)
    for _ in range(iterations):
        # consensus value of each item from de-biased ratings
        adj = grand + (y - grand - offset[r]) / stretch[r]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.bincount(g, weights=adj, minlength=n_items) / n_g
        x = t[g] - grand
        # per-rater shrunk regression of (y - grand) on x: offset + stretch * x
        sx = np.bincount(r, weights=x, minlength=n_raters)
        sy = np.bincount(r, weights=y - grand, minlength=n_raters)
        sxx = np.bincount(r, weights=x * x, minlength=n_raters)
        sxy = np.bincount(r, weights=x * (y - grand), minlength=n_raters)
        # ridge regression per rater: min sum (y-g - a - b x)^2 + k a^2 + lam (b - 1)^2
        lam = k * max(float(np.mean(x * x)), 1e-6)
        det = (n_r + k) * (sxx + lam) - sx * sx
        offset = (sy * (sxx + lam) - sx * (sxy + lam)) / det
        stretch = np.clip(((n_r + k) * (sxy + lam) - sx * sy) / det, 0.25, 4.0)
        # identifiability: the panel as a whole defines the scale
        offset -= np.average(offset, weights=n_r) if n_r.sum() else 0.0
        stretch /= np.exp(np.average(np.log(stretch), weights=n_r)) if n_r.sum() else 1.0
    return RaterEffects(offset=offset, stretch=stretch, n_ratings=n_r.astype(np.int64))


def normalize_scores(
    *,
    scores,
    rater: np.ndarray,
    item: np.ndarray,
    n_raters: int | None = None,
    n_items: int | None = None,
    prior_ratings: float = 1.0,
) -> np.ndarray:
    """Rater-normalized scores: per-rater z-scores (against each rater's fitted centre and
    stretch) mapped back to the panel's 1–10 scale, clipped to [1, 10]."""
    y = np.asarray(scores, dtype=np.float64)
    if y.size == 0:
        return y.copy()
    eff = rater_effects(scores=y, rater=rater, item=item, n_raters=n_raters, n_items=n_items,
                        prior_ratings=prior_ratings)
    r = _as_int("rater", rater)
    grand = y.mean()
    z = (y - grand - eff.offset[r]) / eff.stretch[r]
    return np.clip(grand + z, SCALE_MIN, SCALE_MAX)


# --------------------------------------------------------------------------- agreement


def krippendorff_interval_alpha(*, scores, rater: np.ndarray, item: np.ndarray) -> float:
    """Krippendorff's alpha (interval metric) over items rated at least twice; nan when none is.

    Built from per-item value counts (items × the ten score values) so memory does not
    grow with the number of raters.
    """
    y = np.asarray(scores)
    g = _as_int("item", item)
    _check_lengths(scores=y, item=g, rater=_as_int("rater", rater))
    if y.size == 0:
        return float("nan")
    values = np.rint(y).astype(np.int64)
    _, g_dense = np.unique(g, return_inverse=True)
    n_items = int(g_dense.max()) + 1
    lo, hi = int(values.min()), int(values.max())
    width = hi - lo + 1
    counts = np.bincount(g_dense * width + (values - lo), minlength=n_items * width).reshape(n_items, width)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] < 2 or width < 2:
        return float("nan")
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=np.arange(lo, hi + 1), level_of_measurement="interval")
    )


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PairTable:
    """Bradley–Terry strengths (log scale, mean 0) with CIs, and the empirical win-rate matrix.

    Ties (equal scores) count as half a win for each side.
    """

    strength: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank: np.ndarray
    n_pairs: np.ndarray  # per model
    win_rate: np.ndarray  # [i, j]: share of i-vs-j pairs that i won (ties = 0.5); nan where never paired
    games: np.ndarray  # [i, j]: number of i-vs-j pairs
    level: float
    n_resamples: int


def pair_outcomes(*, left_score, right_score) -> np.ndarray:
    """1 when the left image scored higher, 0 when lower, 0.5 for a tie."""
    left = np.asarray(left_score, dtype=np.float64)
    right = np.asarray(right_score, dtype=np.float64)
    return np.where(left > right, 1.0, np.where(left < right, 0.0, 0.5))


def _bt_fit(wins: np.ndarray, games: np.ndarray, iterations: int = 200, prior: float = 0.5) -> np.ndarray:
    """MM algorithm (Hunter 2004) for Bradley–Terry, vectorised over a leading batch axis.

    wins[..., i, j] = (fractional) wins of i over j; games = wins + wins^T. A ``prior``
    of half a win each way against every other model keeps strengths finite when a
    model won or lost everything (a mild shrinkage towards equal strength).
    Returns log-strengths centred on mean 0.
    """
    m = wins.shape[-1]
    off_diag = 1.0 - np.eye(m)
    w = wins + prior * off_diag
    n = games + 2 * prior * off_diag
    total_wins = w.sum(axis=-1)
    p = np.ones(wins.shape[:-1])
    for _ in range(iterations):
        denom = (n / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        new = total_wins / denom
        new /= np.exp(np.mean(np.log(new), axis=-1, keepdims=True))
        if np.max(np.abs(new - p)) < 1e-10:
            p = new
            break
        p = new
    theta = np.log(p)
    return theta - theta.mean(axis=-1, keepdims=True)


def bradley_terry(
    *,
    left_model,
    right_model,
    outcome,
    prompt,
    n_models: int | None = None,
    n_prompts: int | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> PairTable:
    """Bradley–Terry strengths from pairs, CIs from a bootstrap over prompts.

    ``outcome`` is 1 (left won), 0 (right won) or 0.5 (tie). The per-prompt win
    tensor (P × M × M) is aggregated once; each resample weights it by prompt draws.
    """
    a = _as_int("left_model", left_model)
    b = _as_int("right_model", right_model)
    o = np.asarray(outcome, dtype=np.float64)
    p = _as_int("prompt", prompt)
    _check_lengths(left_model=a, right_model=b, outcome=o, prompt=p)
    if np.any(a == b):
        raise ValueError("a pair must compare two different models")
    n_models = int(n_models if n_models is not None else (max(a.max(), b.max()) + 1 if a.size else 0))
    if a.size == 0:
        nan = np.full(n_models, np.nan)
        empty = np.full((n_models, n_models), np.nan)
        return PairTable(nan, nan, nan, np.ones(n_models, int), np.zeros(n_models, int), empty,
                         np.zeros((n_models, n_models)), level, n_resamples)
    _, p_dense = np.unique(p, return_inverse=True)
    n_p = int(p_dense.max()) + 1
    mm = n_models * n_models
    idx_ab = p_dense * mm + a * n_models + b
    idx_ba = p_dense * mm + b * n_models + a
    per_prompt = (
        np.bincount(idx_ab, weights=o, minlength=n_p * mm) + np.bincount(idx_ba, weights=1.0 - o, minlength=n_p * mm)
    ).reshape(n_p, mm)
    wins = per_prompt.sum(axis=0).reshape(n_models, n_models)
    games = wins + wins.T
    strength = _bt_fit(wins, games)
    w = prompt_weights(n_prompts=n_p, n_resamples=n_resamples, seed=seed)
    boot_wins = (w @ per_prompt).reshape(n_resamples, n_models, n_models)
    boot = _bt_fit(boot_wins, boot_wins + np.swapaxes(boot_wins, -1, -2))
    lo, hi = _percentile_interval(boot, level)
    played = games.sum(axis=1)
    no_data = played == 0
    strength = np.where(no_data, np.nan, strength)
    lo, hi = np.where(no_data, np.nan, lo), np.where(no_data, np.nan, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(games > 0, wins / games, np.nan)
    return PairTable(
        strength=strength, ci_low=lo, ci_high=hi, rank=uncertainty_rank(ci_low=lo, ci_high=hi),
        n_pairs=played.astype(np.int64), win_rate=win_rate, games=games, level=level, n_resamples=n_resamples,
    )


@dataclass(frozen=True)
class PositionBias:
    """Share of pairs the left image won (ties = 0.5; 0.5 = no bias) and left−right score gap."""

    left_win_rate: float
    ci_low: float
    ci_high: float
    mean_gap: float
    gap_ci_low: float
    gap_ci_high: float
    n_pairs: int
    p_value: float  # two-sided sign test of left vs right wins (ties dropped)


def position_bias(
    *, left_score, right_score, prompt, n_resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = 0
) -> PositionBias:
    """Does the left (or right) side win more than half the time? CIs from a prompt bootstrap."""
    left = np.asarray(left_score, dtype=np.float64)
    right = np.asarray(right_score, dtype=np.float64)
    p = _as_int("prompt", prompt)
    _check_lengths(left_score=left, right_score=right, prompt=p)
    if left.size == 0:
        nan = float("nan")
        return PositionBias(nan, nan, nan, nan, nan, nan, 0, nan)
    o = pair_outcomes(left_score=left, right_score=right)
    gap = left - right
    _, pd_ = np.unique(p, return_inverse=True)
    n_p = int(pd_.max()) + 1
    stats_pp = np.stack(
        [np.bincount(pd_, weights=o, minlength=n_p), np.bincount(pd_, weights=gap, minlength=n_p),
         np.bincount(pd_, minlength=n_p).astype(np.float64)],
        axis=1,
    )
    w = prompt_weights(n_prompts=n_p, n_resamples=n_resamples, seed=seed)
    boot = w @ stats_pp
    lo, hi = _percentile_interval(np.stack([boot[:, 0] / boot[:, 2], boot[:, 1] / boot[:, 2]], axis=1), level)
    wins_left = int((o == 1.0).sum())
    wins_right = int((o == 0.0).sum())
    decided = wins_left + wins_right
    p_value = float(sps.binomtest(wins_left, decided, 0.5).pvalue) if decided else float("nan")
    return PositionBias(
        left_win_rate=float(o.mean()), ci_low=float(lo[0]), ci_high=float(hi[0]),
        mean_gap=float(gap.mean()), gap_ci_low=float(lo[1]), gap_ci_high=float(hi[1]),
        n_pairs=int(left.size), p_value=p_value,
    )


# --------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class SpeedSummary:
    median: float
    mean: float
    n: int


def speed_summary(*, seconds) -> SpeedSummary:
    """Median and mean seconds per image over finished generations (nan when none)."""
    s = np.asarray([x for x in seconds if x is not None], dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return SpeedSummary(float("nan"), float("nan"), 0)
    return SpeedSummary(median=float(np.median(s)), mean=float(s.mean()), n=int(s.size))


def spearman(a, b) -> float:
    """Spearman rank correlation (used by the validation benchmarks)."""
    return round(float(sps.spearmanr(a, b).statistic), 10)
