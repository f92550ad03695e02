"""Model means and model differences with intervals a small panel can trust (pure numpy/scipy, no Django).

One criterion's ratings are read as a crossed random-effects model

    y = μ_m + P_p + R_r + PM_pm + RM_rm + E

(prompt difficulty, rater leniency, prompt × model interaction, rater × model taste, the rest). Every
number reported is a *linear* estimator θ̂ = Σ_i w_i·y_i with known weights, so its variance is exact
given the variance components:

    Var θ̂ = Σ_f σ_f² · Σ_levels (W_level − T_level)²        (W_level = Σ of w_i over the level's ratings)

T is the estimand's own weight on a level: 0 for a factor drawn afresh (new prompts, new raters) and
the panel's rating share for raters held fixed ("this panel"). A difference of two models has W_p ≈ 0
for every prompt both saw, so prompt difficulty cancels, and the rater-adjusted difference has W_r ≈ 0,
so leniency cancels too, even when each image is rated once.

The five σ_f² come from a method of moments that needs O(N) work whatever the design (after Gao &
Owen 2017, "Efficient moment calculations for variance components in large unbalanced crossed random
effects models"): half the mean squared difference of two ratings, over the pairs that share exactly a
given set of {prompt, rater, model}, is the sum of the components they do not share. Components are
pooled over models, so rater × model taste is estimated from (R − 1)(M − 1) contrasts, not R − 1.
Intervals are Student t with Satterthwaite degrees of freedom (each component with the degrees of
freedom of its balanced-ANOVA mean square, counted with effective numbers of prompts and raters), never
more than those of a component that carries over half the variance.

The rater-adjusted ("normalized") mean removes each rater's fitted leniency: offsets b̂ from the least
squares fit y ~ model + prompt + rater (so leniency is measured through the prompt × rater crossing,
also with one rating per image), centred on the panel's rating-weighted mean, so the normalized score
stays on the panel's 1–10 level. b̂ is linear in y, so its estimation error is in the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import optimize, sparse
from scipy import stats as sps

SCALE_MIN = 1.0
SCALE_MAX = 10.0
LEVEL = 0.95
ROUNDING_VARIANCE = 1.0 / 12.0

FACTORS = ("prompt", "rater", "prompt_model", "rater_model", "residual")
# the identifiers a factor's level is made of: two ratings share the level iff they agree on all of them
_FACTOR_KEYS = ({"p"}, {"r"}, {"p", "m"}, {"r", "m"}, None)  # residual: never shared by two ratings

# the rule the page states: below it a cell shows its mean and n, "too few ratings", no interval, no rank
MIN_RATINGS = 10
MIN_PROMPTS = 5
MIN_RATERS_RANDOM = 3  # with 1–2 raters the variation between raters cannot be estimated

ESTIMAND_RANDOM = "raters_random"  # new prompts of this kind, new raters like these
ESTIMAND_PANEL = "this_panel"  # new prompts of this kind, these raters
ESTIMANDS = (ESTIMAND_RANDOM, ESTIMAND_PANEL)
ESTIMAND_SENTENCE = {
    ESTIMAND_RANDOM: "new prompts of this kind rated by new raters like these (prompts and raters both random)",
    ESTIMAND_PANEL: "new prompts of this kind rated by this panel (raters fixed: this team's own judgement)",
}


# --------------------------------------------------------------------------- design


@dataclass(frozen=True)
class Design:
    """Integer-coded ratings of one criterion (model, prompt, rater dense from 0) and their counts."""

    y: np.ndarray
    m: np.ndarray
    p: np.ndarray
    r: np.ndarray
    n_models: int
    n_prompts: int
    n_raters: int

    @property
    def n(self) -> int:
        return int(self.y.size)


def design(*, scores, model, prompt, rater, n_models: int) -> Design:
    """Check the arrays and code prompts and raters densely (only those that rated count)."""
    y = np.asarray(scores, dtype=np.float64)
    m = np.asarray(model, dtype=np.int64)
    p_raw = np.asarray(prompt, dtype=np.int64)
    r_raw = np.asarray(rater, dtype=np.int64)
    if not (y.shape == m.shape == p_raw.shape == r_raw.shape) or y.ndim != 1:
        raise ValueError("scores, model, prompt and rater must be 1-d arrays of one length")
    if m.size and (m.min() < 0 or m.max() >= n_models):
        raise ValueError("model index out of range")
    _, p = np.unique(p_raw, return_inverse=True)
    _, r = np.unique(r_raw, return_inverse=True)
    return Design(y=y, m=m, p=p.reshape(-1), r=r.reshape(-1), n_models=int(n_models),
                  n_prompts=int(p.max()) + 1 if p.size else 0, n_raters=int(r.max()) + 1 if r.size else 0)


def _key(d: Design, keys: set[str]) -> np.ndarray:
    k = np.zeros(d.n, dtype=np.int64)
    for name, size, arr in (("p", d.n_prompts, d.p), ("r", d.n_raters, d.r), ("m", d.n_models, d.m)):
        if name in keys:
            k = k * max(size, 1) + arr
    return k


def _level_sums(key: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (N or N × K) per distinct key (levels × K); levels in any fixed order."""
    _, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(-1)
    n_levels = int(inv.max()) + 1 if inv.size else 0
    v = values.reshape(values.shape[0], -1)
    out = np.empty((n_levels, v.shape[1]))
    for j in range(v.shape[1]):
        out[:, j] = np.bincount(inv, weights=v[:, j], minlength=n_levels)
    return out


# --------------------------------------------------------------------------- variance components


@dataclass(frozen=True)
class Components:
    """σ² per factor (FACTORS order), the degrees of freedom given to each, and the effective design sizes."""

    variance: np.ndarray
    df: np.ndarray
    prompts_eff: float
    raters_eff: float


def variance_components(d: Design) -> Components:
    """Method of moments over pairs of ratings classed by which of prompt, rater and model they share."""
    n_f = len(FACTORS)
    if d.n < 2:
        return Components(np.zeros(n_f), np.ones(n_f), float(d.n_prompts), float(d.n_raters))
    model_mean = np.bincount(d.m, weights=d.y, minlength=d.n_models) / np.maximum(
        np.bincount(d.m, minlength=d.n_models), 1)
    e = d.y - model_mean[d.m]
    names = ("p", "r", "m")
    subsets = [frozenset(c) for k in range(4) for c in combinations(names, k)]
    s_of: dict[frozenset, float] = {}
    c_of: dict[frozenset, float] = {}
    for t in subsets:
        key = _key(d, set(t))
        _, inv = np.unique(key, return_inverse=True)
        inv = inv.reshape(-1)
        n_g = np.bincount(inv).astype(np.float64)
        s1 = np.bincount(inv, weights=e)
        s2 = np.bincount(inv, weights=e * e)
        s_of[t] = float(np.sum(n_g * s2 - s1 * s1))  # Σ over pairs within a group of (e_i − e_j)²
        c_of[t] = float(np.sum(n_g * (n_g - 1) / 2))
    # Centring on the estimated model means removes, from a pair of two different models, the error of
    # their estimated difference: its half-variance, about κ·σ² per model-specific factor (κ = Σ share² of a
    # model's ratings over that factor's levels, averaged over models), so those rows count σ² (1 − κ).
    n_m = np.bincount(d.m, minlength=d.n_models).astype(np.float64)
    seen_m = n_m > 0
    share2 = lambda level: float(np.mean(  # noqa: E731
        (np.bincount(level * d.n_models + d.m, minlength=(level.max() + 1) * d.n_models)
         .reshape(-1, d.n_models)[:, seen_m] ** 2).sum(axis=0) / n_m[seen_m] ** 2))
    kappa = {2: share2(d.p), 3: share2(d.r), 4: float(np.mean(1.0 / n_m[seen_m]))}
    rows, rhs, weights = [], [], []
    for t in subsets:
        # pairs sharing exactly t (Möbius inversion over the supersets of t)
        sign_sum = [(-1) ** (len(u) - len(t)) for u in subsets if t <= u]
        sup = [u for u in subsets if t <= u]
        s = sum(sg * s_of[u] for sg, u in zip(sign_sum, sup, strict=True))
        c = sum(sg * c_of[u] for sg, u in zip(sign_sum, sup, strict=True))
        if c < 0.5:
            continue
        row = [0.0 if keys is not None and keys <= t else 1.0 for keys in _FACTOR_KEYS]
        if "m" not in t:
            for f, kap in kappa.items():
                row[f] *= 1.0 - kap
        rows.append(row)
        rhs.append(s / (2.0 * c))
        weights.append(np.sqrt(min(c, float(d.n))))
    a = np.asarray(rows) * np.asarray(weights)[:, None]
    b = np.asarray(rhs) * np.asarray(weights)
    variance, _ = optimize.nnls(a, b)
    # integer scores carry at least their rounding (variance 1/12): no interval of zero width
    variance[-1] = max(variance[-1], ROUNDING_VARIANCE)
    prompts_eff = d.n**2 / float(np.sum(np.bincount(d.p).astype(np.float64) ** 2))
    raters_eff = d.n**2 / float(np.sum(np.bincount(d.r).astype(np.float64) ** 2))
    m_seen = max(int(np.unique(d.m).size), 1)
    df_p = max(prompts_eff - 1.0, 1.0)
    df_r = max(raters_eff - 1.0, 1.0)
    df = np.array([df_p, df_r, df_p * max(m_seen - 1, 1), df_r * max(m_seen - 1, 1),
                   max(d.n - m_seen * (prompts_eff + raters_eff), df_p * max(m_seen - 1, 1))])
    return Components(variance=variance, df=df, prompts_eff=prompts_eff, raters_eff=raters_eff)


# --------------------------------------------------------------------------- estimators (weights)


def raw_weights(d: Design) -> np.ndarray:
    """N × M: the plain mean of model m is Σ_i w_im·y_i."""
    n_m = np.bincount(d.m, minlength=d.n_models).astype(np.float64)
    w = np.zeros((d.n, d.n_models))
    seen = n_m[d.m] > 0
    w[np.flatnonzero(seen), d.m[seen]] = 1.0 / n_m[d.m[seen]]
    return w


def adjusted_weights(d: Design) -> np.ndarray:
    """N × M weights of the rater-adjusted mean: mean over model m's ratings of y − b̂_rater.

    b̂ = (R'QR)⁺ R'Q y, Q the projection off the model and prompt columns (Frisch–Waugh), centred so
    that Σ_r π_r b̂_r = 0 (π = each rater's share of the ratings). Then the mean of model m is
    v_m'y − (ρ_m − π)'b̂, with ρ_m the raters' shares of model m's ratings, so the weights are
    v_m − Q R (R'QR)⁺ (ρ_m − π).
    """
    w = raw_weights(d)
    if d.n == 0 or d.n_raters < 2:
        return w
    n_p, n_r, n_m = d.n_prompts, d.n_raters, d.n_models
    ones = np.ones(d.n)
    N_rp = sparse.csr_matrix((ones, (d.r, d.p)), shape=(n_r, n_p))
    N_pm = sparse.csr_matrix((ones, (d.p, d.m)), shape=(n_p, n_m)).toarray()
    N_rm = sparse.csr_matrix((ones, (d.r, d.m)), shape=(n_r, n_m)).toarray()
    cnt_p = np.asarray(N_pm.sum(axis=1)).ravel()
    cnt_r = np.asarray(N_rm.sum(axis=1)).ravel()
    cnt_m = N_pm.sum(axis=0)
    inv_p = sparse.diags(1.0 / np.maximum(cnt_p, 1))
    g = np.diag(cnt_m) - N_pm.T @ (inv_p @ N_pm)  # M'Q_P M
    g_pinv = np.linalg.pinv(g, rcond=1e-10)
    b = N_rm - np.asarray(N_rp @ (inv_p @ N_pm))  # R'Q_P M
    rqr = (np.diag(cnt_r) - (N_rp @ inv_p @ N_rp.T).toarray()) - b @ g_pinv @ b.T
    pi = cnt_r / d.n
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(cnt_m > 0, N_rm / np.maximum(cnt_m, 1), 0.0)  # R × M
    u = rho - pi[:, None] * (cnt_m > 0)
    # R'QR is singular along the constant (and along any disconnected group of raters): u is orthogonal
    # to the constant; a least-squares solve gives the minimum-norm answer for the rest
    scale = max(float(np.trace(rqr)) / n_r, 1.0)
    x, *_ = np.linalg.lstsq(rqr + np.outer(np.ones(n_r), np.ones(n_r)) * scale / n_r, u, rcond=1e-10)
    s = x[d.r]  # N × M: (R x)
    # Q s = Q_P s − Q_P M G⁺ M'Q_P s
    qs = s - (_level_sums(d.p, s) / np.maximum(cnt_p, 1)[:, None])[d.p]
    c = g_pinv @ np.vstack([np.bincount(d.m, weights=qs[:, j], minlength=n_m) for j in range(n_m)]).T
    qpm_c = c[d.m] - ((N_pm @ c) / np.maximum(cnt_p, 1)[:, None])[d.p]
    return w - (qs - qpm_c)


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Estimate:
    """Point estimates, standard errors, Satterthwaite d.f. and clamped 95% intervals for K contrasts."""

    value: np.ndarray
    se: np.ndarray
    df: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def grams(d: Design, w: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Per estimand and factor, the M × M matrix K_f with λ'K_fλ = Σ_levels (W − T)² for the contrast λ of w."""
    pi = np.bincount(d.r, minlength=d.n_raters).astype(np.float64) / max(d.n, 1)
    out: dict[str, list[np.ndarray]] = {e: [] for e in ESTIMANDS}
    for name, keys in zip(FACTORS, _FACTOR_KEYS, strict=True):
        if keys is None:
            g = w.T @ w
            for e in ESTIMANDS:
                out[e].append(g)
            continue
        key = _key(d, keys)
        uniq, inv = np.unique(key, return_inverse=True)
        a = _level_sums(key, w)
        out[ESTIMAND_RANDOM].append(a.T @ a)
        if name == "rater":
            # "this panel" keeps each rater at its share π_r: only deviations from that are error
            a = a - pi[:, None]
        elif name == "rater_model":
            first = np.zeros(uniq.size, dtype=np.int64)
            first[inv.reshape(-1)] = np.arange(d.n)
            target = np.zeros_like(a)
            target[np.arange(uniq.size), d.m[first]] = pi[d.r[first]]
            a = a - target
        out[ESTIMAND_PANEL].append(a.T @ a)
    return out


def contrasts(*, d: Design, weights: np.ndarray, lam: np.ndarray, comps: Components, gram: list[np.ndarray],
              level: float = LEVEL, bounds: tuple[float, float] = (SCALE_MIN, SCALE_MAX)) -> Estimate:
    """Estimates of the contrasts (columns of ``lam``, M × K) of the per-model estimators ``weights``
    (``gram``: ``grams(d, weights)[estimand]``)."""
    value = (d.y @ weights) @ lam
    terms = np.stack([comps.variance[f] * np.einsum("mk,mn,nk->k", lam, g, lam) for f, g in enumerate(gram)])
    terms = np.maximum(terms, 0.0)
    var = terms.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = var**2 / np.sum(terms**2 / comps.df[:, None], axis=0)
        # Satterthwaite is liberal when one component with few d.f. dominates (three raters' leniency in a
        # mean): never more d.f. than the component that carries over half the variance
        top = np.argmax(terms, axis=0) if terms.size else np.zeros(0, dtype=np.int64)
        dominant = terms.max(axis=0, initial=0.0) > 0.5 * var
    df = np.where(dominant, np.minimum(df, comps.df[top]), df)
    df = np.where(np.isfinite(df), np.maximum(df, 1.0), 1.0)
    se = np.sqrt(var)
    half = sps.t.ppf(0.5 + level / 2, df) * se
    lo = np.clip(value - half, *bounds)
    hi = np.clip(value + half, *bounds)
    return Estimate(value=np.clip(value, *bounds), se=se, df=df, ci_low=lo, ci_high=hi)


# --------------------------------------------------------------------------- one criterion, end to end


@dataclass(frozen=True)
class CriterionResult:
    """Everything the board shows for one criterion under one estimand (index = model)."""

    estimand: str
    mean: np.ndarray  # plain mean (nan without ratings)
    mean_ci: tuple[np.ndarray, np.ndarray]
    normalized: np.ndarray
    normalized_ci: tuple[np.ndarray, np.ndarray]
    n_ratings: np.ndarray
    n_prompts: np.ndarray
    n_raters: np.ndarray
    enough: np.ndarray  # bool: the cell meets the minimum (else: mean and n only)
    # pairs (a < b): rater-adjusted difference a − b, its interval, verdict "a" / "b" / "unclear" / "too few"
    pairs: list[tuple[int, int]]
    diff: np.ndarray
    diff_ci: tuple[np.ndarray, np.ndarray]
    raw_diff: np.ndarray
    raw_diff_ci: tuple[np.ndarray, np.ndarray]
    verdict: list[str]
    rank: np.ndarray  # 0 where no rank (too few)
    better_than: list[list[int]]  # per model: the models it is credibly better than
    raters_estimable: bool  # False with 1–2 raters under "new raters": no intervals at all
    components: Components | None
    df_min: float  # smallest Satterthwaite d.f. among the shown intervals (nan if none)


def too_few(*, n_ratings: int, n_prompts: int) -> bool:
    return n_ratings < MIN_RATINGS or n_prompts < MIN_PROMPTS


def criterion_results(*, scores, model, prompt, rater, n_models: int, level: float = LEVEL
                      ) -> dict[str, CriterionResult]:
    """Means, normalized means, all pairwise differences with verdicts and the rank, for one criterion,
    under both estimands (they share the fit; only the rater terms of the variance differ).

    Rank = 1 + the number of models whose rater-adjusted difference from this one is credibly positive
    (its 95% interval above 0). Each verdict is a 95% statement about its own pair; there is no
    family-wise adjustment over the M(M−1)/2 pairs (the validation reports how often a board has any
    wrong-way verdict).
    """
    d = design(scores=scores, model=model, prompt=prompt, rater=rater, n_models=n_models)
    n_m = np.bincount(d.m, minlength=n_models)
    n_pm = np.zeros(n_models, dtype=np.int64)
    n_rm = np.zeros(n_models, dtype=np.int64)
    if d.n:
        n_pm = (np.bincount(d.p * n_models + d.m, minlength=d.n_prompts * n_models)
                .reshape(d.n_prompts, n_models) > 0).sum(axis=0)
        n_rm = (np.bincount(d.r * n_models + d.m, minlength=d.n_raters * n_models)
                .reshape(d.n_raters, n_models) > 0).sum(axis=0)
    enough = np.array([not too_few(n_ratings=int(n_m[j]), n_prompts=int(n_pm[j])) for j in range(n_models)],
                      dtype=bool)
    pairs = [(a, b) for a in range(n_models) for b in range(a + 1, n_models)]
    nan_m = np.full(n_models, np.nan)
    nan_k = np.full(len(pairs), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = np.where(n_m > 0, np.bincount(d.m, weights=d.y, minlength=n_models) / np.maximum(n_m, 1), np.nan)
    if d.n == 0:
        return {e: CriterionResult(e, nan_m, (nan_m, nan_m), nan_m, (nan_m, nan_m), n_m, n_pm, n_rm, enough,
                                   pairs, nan_k, (nan_k, nan_k), nan_k, (nan_k, nan_k), ["too few"] * len(pairs),
                                   np.zeros(n_models, int), [[] for _ in range(n_models)],
                                   e == ESTIMAND_PANEL, None, float("nan")) for e in ESTIMANDS}
    comps = variance_components(d)
    w_raw = raw_weights(d)
    w_adj = adjusted_weights(d)
    g_raw, g_adj = grams(d, w_raw), grams(d, w_adj)
    eye = np.eye(n_models)
    lam_d = np.stack([eye[a] - eye[b] for a, b in pairs], axis=1) if pairs else np.zeros((n_models, 0))
    diff_bounds = (SCALE_MIN - SCALE_MAX, SCALE_MAX - SCALE_MIN)
    both = np.array([n_m[a] > 0 and n_m[b] > 0 for a, b in pairs], dtype=bool)
    out = {}
    for estimand in ESTIMANDS:
        raw = contrasts(d=d, weights=w_raw, lam=eye, comps=comps, gram=g_raw[estimand], level=level)
        norm = contrasts(d=d, weights=w_adj, lam=eye, comps=comps, gram=g_adj[estimand], level=level)
        dif = contrasts(d=d, weights=w_adj, lam=lam_d, comps=comps, gram=g_adj[estimand], level=level,
                        bounds=diff_bounds)
        rdif = contrasts(d=d, weights=w_raw, lam=lam_d, comps=comps, gram=g_raw[estimand], level=level,
                         bounds=diff_bounds)
        raters_estimable = estimand == ESTIMAND_PANEL or d.n_raters >= MIN_RATERS_RANDOM
        shown = enough & raters_estimable
        pair_ok = np.array([shown[a] and shown[b] for a, b in pairs], dtype=bool)
        verdict = []
        better: list[list[int]] = [[] for _ in range(n_models)]
        n_better = np.zeros(n_models, dtype=np.int64)
        for k, (a, b) in enumerate(pairs):
            if not pair_ok[k]:
                verdict.append("too few")
            elif dif.ci_low[k] > 0:
                verdict.append("a")
                better[a].append(b)
                n_better[b] += 1
            elif dif.ci_high[k] < 0:
                verdict.append("b")
                better[b].append(a)
                n_better[a] += 1
            else:
                verdict.append("unclear")
        def keep_m(x, shown=shown):
            return np.where(shown, x, np.nan)

        def keep_k(x, pair_ok=pair_ok):
            return np.where(pair_ok, x, np.nan)

        dfs = np.concatenate([raw.df[shown], dif.df[pair_ok]])
        out[estimand] = CriterionResult(
            estimand=estimand, mean=plain, mean_ci=(keep_m(raw.ci_low), keep_m(raw.ci_high)),
            normalized=np.where(n_m > 0, norm.value, np.nan), normalized_ci=(keep_m(norm.ci_low), keep_m(norm.ci_high)),
            n_ratings=n_m, n_prompts=n_pm, n_raters=n_rm, enough=enough, pairs=pairs,
            diff=np.where(both, dif.value, np.nan), diff_ci=(keep_k(dif.ci_low), keep_k(dif.ci_high)),
            raw_diff=np.where(both, rdif.value, np.nan), raw_diff_ci=(keep_k(rdif.ci_low), keep_k(rdif.ci_high)),
            verdict=verdict, rank=np.where(shown, 1 + n_better, 0), better_than=[sorted(b) for b in better],
            raters_estimable=raters_estimable, components=comps,
            df_min=float(dfs.min()) if dfs.size else float("nan"),
        )
    return out
