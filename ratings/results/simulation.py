"""A simulated rating panel with a known truth (pure numpy; no Django).

Used three ways: the statistics tests, ``benchmarks/simulate_panel.py`` and the
``simulate_panel`` command. A rating is

    score = clip(round(5.5 + stretch_r · (q_m + d_p + u_mp − 5.5) + offset_r + noise), 1, 10)

with q_m the model's latent quality, d_p the prompt's difficulty (shared by every
model), u_mp a model × prompt interaction (models are good at different prompts),
offset_r / stretch_r the rater's leniency and scale, and noise per rating. In a pair
the same rater scores both images with the same latent values, so the same latent
model decides who wins.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from .. import active
from . import stats

MID = 5.5


@dataclass(frozen=True)
class Panel:
    """The population a simulated study is drawn from."""

    quality: tuple[float, ...]  # q_m on the 1–10 scale
    prompt_sd: float = 0.8
    interaction_sd: float = 0.4
    rater_offset_sd: float = 0.6
    rater_stretch_sd: float = 0.15  # log-normal spread of raters' scale
    noise_sd: float = 1.0

    @property
    def n_models(self) -> int:
        return len(self.quality)


@dataclass
class Raters:
    offset: np.ndarray
    stretch: np.ndarray


@dataclass
class Draw:
    """Latent state of one simulated study: its prompts and its raters."""

    difficulty: np.ndarray  # (P,)
    interaction: np.ndarray  # (P, M)
    raters: Raters
    extra: dict = field(default_factory=dict)


def latent_quality_for(key: str, *, low: float = 3.5, high: float = 8.0) -> float:
    """A stable latent quality from a name, so demo models differ the same way on every run."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return low + (high - low) * (h / 2**64)


def draw_study(*, panel: Panel, n_prompts: int, n_raters: int, rng: np.random.Generator) -> Draw:
    """Sample the prompts and raters of one study."""
    return Draw(
        difficulty=rng.normal(0.0, panel.prompt_sd, n_prompts),
        interaction=rng.normal(0.0, panel.interaction_sd, (n_prompts, panel.n_models)),
        raters=Raters(
            offset=rng.normal(0.0, panel.rater_offset_sd, n_raters),
            stretch=np.exp(rng.normal(0.0, panel.rater_stretch_sd, n_raters)),
        ),
    )


def score(
    *, panel: Panel, draw: Draw, model: np.ndarray, prompt: np.ndarray, rater: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """Integer scores 1–10 for given (model, prompt, rater) triples and noise draws."""
    q = np.asarray(panel.quality)[model] + draw.difficulty[prompt] + draw.interaction[prompt, model]
    raw = MID + draw.raters.stretch[rater] * (q - MID) + draw.raters.offset[rater] + noise
    return np.clip(np.rint(raw), 1, 10).astype(np.int64)


def true_means(*, panel: Panel, n: int = 400_000, seed: int = 12345) -> np.ndarray:
    """Expected score of each model over the prompt, rater and noise populations
    (after rounding and clipping), by Monte Carlo with fresh draws for every sample."""
    rng = np.random.default_rng(seed)
    out = np.empty(panel.n_models)
    for m, q in enumerate(panel.quality):
        latent = q + rng.normal(0, panel.prompt_sd, n) + rng.normal(0, panel.interaction_sd, n)
        stretch = np.exp(rng.normal(0, panel.rater_stretch_sd, n))
        raw = MID + stretch * (latent - MID) + rng.normal(0, panel.rater_offset_sd, n) + rng.normal(0, panel.noise_sd, n)
        out[m] = np.clip(np.rint(raw), 1, 10).mean()
    return out


@dataclass
class SingleRatings:
    score: np.ndarray
    model: np.ndarray
    prompt: np.ndarray
    rater: np.ndarray
    item: np.ndarray  # model × prompt image id: prompt * M + model
    n_prompts: int
    n_raters: int


def simulate_balanced(
    *,
    panel: Panel,
    n_prompts: int,
    ratings_per_item: int,
    n_raters: int,
    rng: np.random.Generator,
    draw: Draw | None = None,
    rater_choice: np.ndarray | None = None,
) -> SingleRatings:
    """Every image (model × prompt) rated ``ratings_per_item`` times by distinct random raters.

    ``rater_choice`` (optional, same length as the ratings) overrides who rates what,
    for designs where some raters see some models more.
    """
    draw = draw or draw_study(panel=panel, n_prompts=n_prompts, n_raters=n_raters, rng=rng)
    m_count = panel.n_models
    items = np.arange(n_prompts * m_count)
    item = np.repeat(items, ratings_per_item)
    prompt, model = item // m_count, item % m_count
    if rater_choice is None:
        # distinct raters per image: a random permutation slice per image
        rater = np.concatenate([rng.choice(n_raters, ratings_per_item, replace=False) for _ in items])
    else:
        rater = rater_choice
    noise = rng.normal(0, panel.noise_sd, item.size)
    s = score(panel=panel, draw=draw, model=model, prompt=prompt, rater=rater, noise=noise)
    return SingleRatings(s, model, prompt, rater, item, n_prompts, n_raters)


def biased_rater_assignment(
    *, n_models: int, n_prompts: int, ratings_per_item: int, n_raters: int, biased: np.ndarray,
    favoured_models: set[int], share: float, rng: np.random.Generator,
) -> np.ndarray:
    """Raters per rating where the ``biased`` raters take ``share`` of the ratings of
    ``favoured_models`` and few of the rest (uneven spread of harsh raters over models)."""
    biased_ids = np.flatnonzero(biased)
    fair_ids = np.flatnonzero(~biased)
    out = []
    for item in range(n_prompts * n_models):
        model = item % n_models
        p_biased = share if model in favoured_models else (1 - share) * 0.2
        chosen: list[int] = []
        for _ in range(ratings_per_item):
            pool = biased_ids if rng.random() < p_biased else fair_ids
            free = np.setdiff1d(pool, chosen)
            if free.size == 0:
                free = np.setdiff1d(np.arange(n_raters), chosen)
            chosen.append(int(rng.choice(free)))
        out.extend(chosen)
    return np.asarray(out, dtype=np.int64)


@dataclass
class PairRatings:
    left_model: np.ndarray
    right_model: np.ndarray
    left_score: np.ndarray
    right_score: np.ndarray
    prompt: np.ndarray
    rater: np.ndarray


def simulate_pairs(
    *, panel: Panel, draw: Draw, n_pairs: int, rng: np.random.Generator, left_bonus: float = 0.0
) -> PairRatings:
    """Random model pairs on random prompts, the same rater scoring both sides.

    ``left_bonus`` adds a position effect to the left image, to test bias detection.
    """
    m_count = panel.n_models
    n_prompts = draw.difficulty.size
    n_raters = draw.raters.offset.size
    a = rng.integers(0, m_count, n_pairs)
    b = (a + rng.integers(1, m_count, n_pairs)) % m_count
    p = rng.integers(0, n_prompts, n_pairs)
    r = rng.integers(0, n_raters, n_pairs)
    left = score(panel=panel, draw=draw, model=a, prompt=p, rater=r, noise=rng.normal(0, panel.noise_sd, n_pairs) + left_bonus)
    right = score(panel=panel, draw=draw, model=b, prompt=p, rater=r, noise=rng.normal(0, panel.noise_sd, n_pairs))
    return PairRatings(a, b, left, right, p, r)


# --------------------------------------------------------------------------- active vs balanced


def _separated(tab: stats.MeanTable) -> bool:
    return sorted(tab.rank.tolist()) == list(range(1, tab.rank.size + 1))


def ratings_to_separation(*, panel: Panel, strategy: str, seed: int, n_prompts: int = 200, check_every: int = 20,
                          max_ratings: int = 8000) -> int:
    """Rate one image at a time (its model chosen by the strategy, its prompt the least rated for that
    model) until every model's 95% CI is apart from every other's; return how many ratings that took."""
    rng = np.random.default_rng(seed)
    n_raters = 100
    draw = draw_study(panel=panel, n_prompts=n_prompts, n_raters=n_raters, rng=rng)
    m_count = panel.n_models
    per_prompt = np.zeros((m_count, n_prompts), dtype=np.int64)
    models: list[int] = []
    prompts: list[int] = []
    raters: list[int] = []
    scores: list[int] = []
    n = np.zeros((m_count, 1))
    cell_n = np.zeros((m_count, 1, n_prompts))
    cell_s, cell_s2 = np.zeros_like(cell_n), np.zeros_like(cell_n)
    pyrng = random.Random(seed)
    while len(scores) < max_ratings:
        if strategy == "balanced":
            fewest = n[:, 0].min()
            m = pyrng.choice([i for i in range(m_count) if n[i, 0] == fewest])
        else:
            priority = active.model_priority(active.state_from_prompt_sums(n=cell_n, total=cell_s, total_sq=cell_s2))
            chosen = active.choose(priority=priority, candidate_models=[(i,) for i in range(m_count)],
                                   candidate_n=[int(n[i, 0]) for i in range(m_count)], rng=pyrng)
            assert chosen is not None  # every model is a candidate
            m = chosen
        row = per_prompt[m]
        p = int(pyrng.choice(np.flatnonzero(row == row.min()).tolist()))
        r = int(rng.integers(0, n_raters))
        y = int(score(panel=panel, draw=draw, model=np.array([m]), prompt=np.array([p]), rater=np.array([r]),
                      noise=rng.normal(0, panel.noise_sd, 1))[0])
        per_prompt[m, p] += 1
        models.append(m)
        prompts.append(p)
        raters.append(r)
        scores.append(y)
        n[m, 0] += 1
        cell_n[m, 0, p] += 1
        cell_s[m, 0, p] += y
        cell_s2[m, 0, p] += y * y
        if len(scores) % check_every == 0 and n.min() >= 5:
            tab = stats.model_means(scores=scores, model=np.asarray(models), prompt=np.asarray(prompts),
                                    rater=np.asarray(raters), n_models=m_count, n_prompts=n_prompts,
                                    n_resamples=400, seed=seed)
            if _separated(tab):
                return len(scores)
    return max_ratings


# --------------------------------------------------------------------------- the issue-11 validation panel


@dataclass(frozen=True)
class CrossedPanel:
    """The generative model of the small-panel validation (issue 11), per criterion c:

        y = clip(round(5.5 + s_r·(q_mc + d_p + u_pmc − 5.5) + o_rc + t_rmc + σ_r·ε), 1, 10)

    d_p skewed prompt difficulty (a standardized gamma(2), long tail of hard prompts), u prompt × model
    interaction, o rater leniency (correlated across criteria), s_r the rater's use of the scale
    (log-normal), t rater × model taste, σ_r the rater's own noise scale (log-normal around ``noise_sd``).
    """

    quality: tuple[tuple[float, ...], ...] = ((6.4, 6.1, 5.5, 4.9, 4.3), (6.6, 6.2, 5.6, 5.0, 4.4))
    prompt_sd: float = 0.8
    interaction_sd: float = 0.5
    leniency_sd: float = 0.7
    leniency_corr: float = 0.6
    stretch_sd: float = 0.0
    taste_sd: float = 0.3
    noise_sd: float = 1.0
    noise_spread: float = 0.3

    @property
    def n_models(self) -> int:
        return len(self.quality[0])

    @property
    def n_criteria(self) -> int:
        return len(self.quality)


@dataclass
class CrossedStudy:
    """One simulated study: per criterion the ratings, and the truths for both estimands."""

    score: np.ndarray  # (C, N)
    model: np.ndarray  # (N,)
    prompt: np.ndarray
    rater: np.ndarray
    truth_panel: np.ndarray  # (C, M): mean over new prompts of *these* raters (weighted by their share)


def _skewed(rng: np.random.Generator, size) -> np.ndarray:
    g = rng.gamma(2.0, 1.0, size)
    return -(g - 2.0) / np.sqrt(2.0)  # mean 0, SD 1, long tail of hard prompts (negative)


def _expected_score(latent: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E clip(round(latent + sd·ε), 1, 10) for ε ~ N(0, 1), exactly (ten-step staircase)."""
    steps = np.arange(1, 10) + 0.5
    return 1.0 + ndtr((latent[..., None] - steps) / sd[..., None]).sum(axis=-1)


@functools.lru_cache(maxsize=8)
def _latent_points(panel: CrossedPanel, n: int = 128) -> np.ndarray:
    """Stratified quantiles of d_p + u_pm (the prompt part of a latent score), for the panel truths."""
    rng = np.random.default_rng(99)
    big = panel.prompt_sd * _skewed(rng, 400_000) + rng.normal(0, panel.interaction_sd, 400_000)
    return np.quantile(big, (np.arange(n) + 0.5) / n)


@functools.lru_cache(maxsize=8)
def crossed_truth(panel: CrossedPanel, n: int = 1_000_000, seed: int = 4242) -> np.ndarray:
    """(C, M) population means over new prompts and new raters (noise integrated exactly)."""
    rng = np.random.default_rng(seed)
    out = np.empty((panel.n_criteria, panel.n_models))
    lat = panel.prompt_sd * _skewed(rng, n)
    stretch = np.exp(rng.normal(0, panel.stretch_sd, n))
    sd = panel.noise_sd * np.exp(rng.normal(0, panel.noise_spread, n))
    for c in range(panel.n_criteria):
        off = rng.normal(0, panel.leniency_sd, n)
        for m, q in enumerate(panel.quality[c]):
            x = MID + stretch * (q + lat + rng.normal(0, panel.interaction_sd, n) - MID) + off + rng.normal(
                0, panel.taste_sd, n)
            out[c, m] = _expected_score(x, sd).mean()
    return out


def simulate_crossed(*, panel: CrossedPanel, n_prompts: int, n_raters: int, k: int,
                     rng: np.random.Generator) -> CrossedStudy:
    """Every image (prompt × model) rated on every criterion by k distinct raters drawn from the panel."""
    n_m, n_c = panel.n_models, panel.n_criteria
    items = np.arange(n_prompts * n_m)
    item = np.repeat(items, k)
    prompt, model = item // n_m, item % n_m
    rater = np.argsort(rng.random((items.size, n_raters)), axis=1)[:, :k].reshape(-1)
    difficulty = panel.prompt_sd * _skewed(rng, n_prompts)
    cov = panel.leniency_sd**2 * (np.full((n_c, n_c), panel.leniency_corr) + (1 - panel.leniency_corr) * np.eye(n_c))
    leniency = rng.multivariate_normal(np.zeros(n_c), cov, n_raters)  # (R, C)
    stretch = np.exp(rng.normal(0, panel.stretch_sd, n_raters))
    noise = panel.noise_sd * np.exp(rng.normal(0, panel.noise_spread, n_raters))
    share = np.bincount(rater, minlength=n_raters) / rater.size
    pts = _latent_points(panel)
    scores = np.empty((n_c, item.size), dtype=np.int64)
    truth_panel = np.empty((n_c, n_m))
    for c in range(n_c):
        q = np.asarray(panel.quality[c])
        inter = rng.normal(0, panel.interaction_sd, (n_prompts, n_m))
        taste = rng.normal(0, panel.taste_sd, (n_raters, n_m))
        latent = q[model] + difficulty[prompt] + inter[prompt, model]
        raw = (MID + stretch[rater] * (latent - MID) + leniency[rater, c] + taste[rater, model]
               + noise[rater] * rng.normal(0, 1, item.size))
        scores[c] = np.clip(np.rint(raw), 1, 10)
        # this panel's truth: each rater's expected score over new prompts, weighted by their share
        x = (MID + stretch[:, None, None] * (q[None, :, None] + pts[None, None, :] - MID)
             + leniency[:, c, None, None] + taste[:, :, None])  # (R, M, points)
        e_rm = _expected_score(x, np.broadcast_to(noise[:, None, None], x.shape)).mean(axis=-1)
        truth_panel[c] = share @ e_rm
    return CrossedStudy(score=scores, model=model, prompt=prompt, rater=rater, truth_panel=truth_panel)
