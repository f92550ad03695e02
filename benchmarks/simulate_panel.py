"""Statistical validation of ratings/stats.py and ratings/active.py on simulated panels with a known truth.

    python benchmarks/simulate_panel.py [--studies 200] [--quick]

Prints four markdown tables (they go into benchmarks/RESULTS.md, "Statistics validation"):

1. ranking recovered (Spearman 1.0) for well separated models at ~300 ratings per model;
2. 95% CI coverage of the true means over >= 200 simulated studies (prompt bootstrap alone
   and with the panel-leniency term the leaderboard uses);
3. raw mean vs rater-normalized score when 30% of raters are strongly harsh and rate mostly
   the best models;
4. ratings needed until every model's CI is separated from every other: active vs balanced.

Pure numpy: no database, no Django. Every study is seeded, so a run is reproducible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ratings.results import crossed, stats  # noqa: E402
from ratings.results.simulation import (  # noqa: E402
    MID,
    CrossedPanel,
    Panel,
    biased_rater_assignment,
    crossed_truth,
    draw_study,
    ratings_to_separation,
    simulate_balanced,
    simulate_crossed,
    simulate_pairs,
    true_means,
)

SEPARATED = Panel(quality=(3.5, 4.5, 5.5, 6.5, 7.5))
CLOSER = Panel(quality=(4.5, 5.0, 5.5, 6.0, 6.5))


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------- 1. ranking


def ranking_recovery(n_studies: int) -> str:
    rows = []
    for label, panel in (("1.0 apart", SEPARATED), ("0.5 apart", CLOSER)):
        truth = true_means(panel=panel)
        for n_prompts, k in ((10, 3), (34, 3), (100, 3)):
            hits, bt_hits = 0, 0
            for s in range(n_studies):
                rng = np.random.default_rng(10_000 + s)
                d = simulate_balanced(panel=panel, n_prompts=n_prompts, ratings_per_item=k, n_raters=40, rng=rng)
                tab = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, n_models=5, n_resamples=200,
                                        seed=s)
                hits += stats.spearman(tab.mean, truth) == 1.0
                draw = draw_study(panel=panel, n_prompts=n_prompts, n_raters=40, rng=rng)
                pr = simulate_pairs(panel=panel, draw=draw, n_pairs=n_prompts * k * 5 // 2, rng=rng)
                out = stats.pair_outcomes(left_score=pr.left_score, right_score=pr.right_score)
                bt = stats.bradley_terry(left_model=pr.left_model, right_model=pr.right_model, outcome=out,
                                         prompt=pr.prompt, n_models=5, n_resamples=10, seed=s)
                bt_hits += stats.spearman(bt.strength, panel.quality) == 1.0
            rows.append([label, n_prompts * k, n_prompts, n_studies, f"{hits / n_studies:.1%}",
                         f"{bt_hits / n_studies:.1%}"])
    return table(["models", "ratings per model", "prompts", "studies", "mean score: Spearman = 1.0",
                  "Bradley–Terry (same number of images in pairs): Spearman = 1.0"], rows)


# --------------------------------------------------------------------------- 2. coverage


def coverage(n_studies: int) -> str:
    rows = []
    configs = [
        ("40 prompts × 3, 20 raters", Panel(quality=(4.0, 5.0, 6.0, 7.0, 8.0)), 40, 20),
        ("60 prompts × 3, 60 raters", Panel(quality=(4.0, 5.0, 6.0, 7.0, 8.0)), 60, 60),
        ("100 prompts × 3, 300 raters", Panel(quality=(4.0, 5.0, 6.0, 7.0, 8.0)), 100, 300),
        ("60 prompts × 3, 20 raters, harsh spread (SD 1.0)", Panel(quality=(4.0, 5.0, 6.0, 7.0, 8.0),
                                                                  rater_offset_sd=1.0), 60, 20),
    ]
    for label, panel, n_prompts, n_raters in configs:
        truth = true_means(panel=panel)
        plain, full, widths = [], [], []
        for s in range(n_studies):
            rng = np.random.default_rng(20_000 + s)
            d = simulate_balanced(panel=panel, n_prompts=n_prompts, ratings_per_item=3, n_raters=n_raters, rng=rng)
            a = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, n_models=5, n_resamples=1000, seed=s)
            b = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, rater=d.rater, n_models=5,
                                  n_resamples=1000, seed=s)
            plain.append((a.ci_low <= truth) & (truth <= a.ci_high))
            full.append((b.ci_low <= truth) & (truth <= b.ci_high))
            widths.append(np.mean(b.ci_high - b.ci_low))
        per_study = np.mean(full, axis=1)  # misses are correlated within a study (shared prompts)
        se = per_study.std(ddof=1) / np.sqrt(n_studies)
        rows.append([label, n_studies, f"{np.mean(plain):.1%}", f"**{np.mean(full):.1%}** ± {1.96 * se:.1%}",
                     f"{np.min(np.mean(full, axis=0)):.1%}–{np.max(np.mean(full, axis=0)):.1%}",
                     f"{np.mean(widths):.2f}"])
    return table(["design", "studies", "prompt bootstrap only", "prompt bootstrap + panel leniency (used; ± 95% MC)",
                  "per model (used)", "mean CI width"], rows)


# --------------------------------------------------------------------------- 3. biased raters


def biased_raters(n_studies: int) -> str:
    panel = Panel(quality=(6.2, 5.8, 5.4, 5.0, 4.6), rater_offset_sd=0.3)
    n_prompts, k, n_raters = 100, 3, 40
    raw_ok = norm_ok = 0
    raw_rho, norm_rho = [], []
    for s in range(n_studies):
        rng = np.random.default_rng(30_000 + s)
        draw = draw_study(panel=panel, n_prompts=n_prompts, n_raters=n_raters, rng=rng)
        biased = np.zeros(n_raters, bool)
        biased[: int(0.3 * n_raters)] = True
        draw.raters.offset[biased] -= 3.0
        chosen = biased_rater_assignment(n_models=5, n_prompts=n_prompts, ratings_per_item=k, n_raters=n_raters,
                                         biased=biased, favoured_models={0, 1}, share=0.7, rng=rng)
        d = simulate_balanced(panel=panel, n_prompts=n_prompts, ratings_per_item=k, n_raters=n_raters, rng=rng,
                              draw=draw, rater_choice=chosen)
        raw = stats.model_means(scores=d.score, model=d.model, prompt=d.prompt, n_models=5, n_resamples=10)
        z = stats.normalize_scores(scores=d.score, rater=d.rater, item=d.item)
        norm = stats.model_means(scores=z, model=d.model, prompt=d.prompt, n_models=5, n_resamples=10)
        r1, r2 = stats.spearman(raw.mean, panel.quality), stats.spearman(norm.mean, panel.quality)
        raw_ok += r1 == 1.0
        norm_ok += r2 == 1.0
        raw_rho.append(r1)
        norm_rho.append(r2)
    return table(
        ["studies", "score", "true ranking kept (Spearman = 1.0)", "mean Spearman"],
        [[n_studies, "raw mean", f"{raw_ok / n_studies:.0%}", f"{np.mean(raw_rho):.2f}"],
         [n_studies, "rater-normalized", f"{norm_ok / n_studies:.0%}", f"{np.mean(norm_rho):.2f}"]],
    )


# --------------------------------------------------------------------------- 4. active vs balanced


def fixed_allocation_saving(panel: Panel, *, z: float = 1.96, n: int = 400_000, seed: int = 12345) -> float:
    """Saving of the best *fixed* split of ratings over balanced, when the true means and the SD of one
    rating are known and every CI is taken to be z·SD/√n around the true mean (no sampling noise).

    This is what allocation alone can buy: the minimum of Σ n_m subject to z·(SD_a/√n_a + SD_b/√n_b)
    ≤ gap_ab for every pair of neighbours, against the smallest common n that meets all of them.
    Anything an adaptive policy saves beyond this comes from the sampling noise (stopping where the
    observed gaps happen to be favourable), which is much less predictable.
    """
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    mu, sd = [], []
    for q in panel.quality:
        latent = q + rng.normal(0, panel.prompt_sd, n) + rng.normal(0, panel.interaction_sd, n)
        stretch = np.exp(rng.normal(0, panel.rater_stretch_sd, n))
        raw = MID + stretch * (latent - MID) + rng.normal(0, panel.rater_offset_sd, n) + rng.normal(0, panel.noise_sd, n)
        y = np.clip(np.rint(raw), 1, 10)
        mu.append(y.mean())
        sd.append(y.std())
    order = np.argsort(mu)
    mu, sd = np.asarray(mu)[order], np.asarray(sd)[order]
    gaps = np.diff(mu)
    balanced = panel.n_models * max((z * (sd[i] + sd[i + 1]) / gaps[i]) ** 2 for i in range(gaps.size))
    # variables h_m = 1/√n_m
    cons = [{"type": "ineq", "fun": (lambda h, i=i: gaps[i] - z * (sd[i] * h[i] + sd[i + 1] * h[i + 1]))}
            for i in range(gaps.size)]
    res = minimize(lambda h: np.sum(1 / h**2), x0=np.full(panel.n_models, 0.05), constraints=cons,
                   bounds=[(1e-4, 1.0)] * panel.n_models, method="SLSQP")
    return 1 - float(np.sum(1 / res.x**2)) / balanced


def active_vs_balanced(n_runs: int, seed: int = 40_000) -> str:
    scenarios = [
        ("one close race (3.0, 4.6, 6.0, 7.0, 7.5)", Panel(quality=(3.0, 4.6, 6.0, 7.0, 7.5), prompt_sd=0.5,
                                                           interaction_sd=0.3, rater_offset_sd=0.5)),
        ("evenly spaced (3.0, 4.0, 5.0, 6.0, 7.0)", Panel(quality=(3.0, 4.0, 5.0, 6.0, 7.0), prompt_sd=0.5,
                                                          interaction_sd=0.3, rater_offset_sd=0.5)),
    ]
    rows = []
    for label, panel in scenarios:
        bal = [ratings_to_separation(panel=panel, strategy="balanced", seed=seed + s) for s in range(n_runs)]
        act = [ratings_to_separation(panel=panel, strategy="active", seed=seed + s) for s in range(n_runs)]
        ratio = np.array(act) / np.array(bal)
        rows.append([label, n_runs, f"{np.median(bal):.0f}", f"{np.median(act):.0f}",
                     f"{1 - np.median(act) / np.median(bal):.0%}", f"{1 - np.sum(act) / np.sum(bal):.0%}",
                     f"{1 - np.median(ratio):.0%}",
                     f"{np.mean(ratio < 1):.0%}", f"{fixed_allocation_saving(panel):.0%}"])
    return table(["true qualities", "runs", "balanced: median ratings", "active: median ratings",
                  "saving (medians)", "saving (all ratings of all runs)", "median per-run saving",
                  "runs where active needed fewer", "best fixed split knowing the truth: saving"], rows)


# --------------------------------------------------------------------------- 5. issue 11: small panels

SETTINGS = [(p, r, k) for p in (10, 50, 200) for r in (3, 20) for k in (1, 3)]
SCENARIOS = {
    "pm0.5": CrossedPanel(),  # prompt × model SD 0.5, taste SD 0.3: coverage and power
    "pm1.0": CrossedPanel(interaction_sd=1.0),  # prompt × model SD 1.0, taste SD 0.3: coverage
    "notaste": CrossedPanel(taste_sd=0.0),  # prompt × model SD 0.5, no taste: power as the issue states it
    "stretch": CrossedPanel(stretch_sd=0.2),  # beyond the issue's list: raters also differ in scale use
}
PIGEONHOLE_RESAMPLES = 200


def pigeonhole(*, y, model, prompt, rater, n_models: int, rng: np.random.Generator, n_resamples: int,
               level: float = 0.95):
    """Two-way (pigeonhole) bootstrap of the plain means: prompts and raters resampled independently, a
    rating weighted by (times its prompt drawn) × (times its rater drawn); percentile intervals of the
    means and of every difference (the same draws for all models, so the differences are paired)."""
    _, p = np.unique(prompt, return_inverse=True)
    _, r = np.unique(rater, return_inverse=True)
    n_p, n_r = p.max() + 1, r.max() + 1
    cell = (p * n_r + r) * n_models + model
    s = np.bincount(cell, weights=y, minlength=n_p * n_r * n_models).reshape(n_p, n_r * n_models)
    c = np.bincount(cell, minlength=n_p * n_r * n_models).reshape(n_p, n_r * n_models).astype(float)
    wp = rng.multinomial(n_p, np.full(n_p, 1 / n_p), n_resamples).astype(float)
    wr = rng.multinomial(n_r, np.full(n_r, 1 / n_r), n_resamples).astype(float)
    bs = ((wp @ s).reshape(n_resamples, n_r, n_models) * wr[:, :, None]).sum(axis=1)
    bc = ((wp @ c).reshape(n_resamples, n_r, n_models) * wr[:, :, None]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = bs / bc
    pairs = [(a, b) for a in range(n_models) for b in range(a + 1, n_models)]
    dif = np.stack([boot[:, a] - boot[:, b] for a, b in pairs], axis=1)
    q = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(invalid="ignore"):
        m_lo, m_hi = np.nanquantile(boot, q, axis=0)
        d_lo, d_hi = np.nanquantile(dif, q, axis=0)
    return m_lo, m_hi, d_lo, d_hi


def _one_study(args):
    """All measures of one simulated study (both criteria): a flat dict of sums, averaged by the caller."""
    scenario, n_prompts, n_raters, k, seed, with_bootstrap = args
    panel = SCENARIOS[scenario]
    truth = crossed_truth(panel)
    rng = np.random.default_rng(seed)
    st = simulate_crossed(panel=panel, n_prompts=n_prompts, n_raters=n_raters, k=k, rng=rng)
    pairs = [(a, b) for a in range(panel.n_models) for b in range(a + 1, panel.n_models)]
    out: dict[str, float] = {}

    def add(key, value):
        out[key] = out.get(key, 0.0) + float(value)

    for c in range(panel.n_criteria):
        t_pop, t_pan = truth[c], st.truth_panel[c]
        d_pop = np.array([t_pop[a] - t_pop[b] for a, b in pairs])
        d_pan = np.array([t_pan[a] - t_pan[b] for a, b in pairs])
        res = crossed.criterion_results(scores=st.score[c], model=st.model, prompt=st.prompt, rater=st.rater,
                                        n_models=panel.n_models)
        for est, t_m, t_d in (("random", t_pop, d_pop), ("panel", t_pan, d_pan)):
            r_ = res[crossed.ESTIMAND_RANDOM if est == "random" else crossed.ESTIMAND_PANEL]
            for name, (lo, hi), t in (("mean", r_.mean_ci, t_m), ("norm", r_.normalized_ci, t_m),
                                      ("diff", r_.diff_ci, t_d), ("rawdiff", r_.raw_diff_ci, t_d)):
                ok = ~np.isnan(lo)
                add(f"{est}:{name}:n", ok.sum())
                add(f"{est}:{name}:hit", ((lo <= t) & (t <= hi))[ok].sum())
                add(f"{est}:{name}:width", (hi - lo)[ok].sum())
                if name in ("mean", "norm"):
                    add(f"{est}:{name}:outside", ((lo < 1) | (hi > 10))[ok].sum())
            # the top two are models 0 and 1 (pair index 0): told apart, and the wrong way
            add(f"{est}:apart:c{c}", r_.verdict[0] == "a")
            add(f"{est}:wrong:c{c}", r_.verdict[0] == "b")
            wrong_any = any((v == "a" and t_d[i] < 0) or (v == "b" and t_d[i] > 0) for i, v in enumerate(r_.verdict))
            add(f"{est}:wrong_any", wrong_any)
            add(f"{est}:df_min", r_.df_min if np.isfinite(r_.df_min) else 0.0)
        if not with_bootstrap:
            continue
        m_lo, m_hi, d_lo, d_hi = pigeonhole(y=st.score[c].astype(float), model=st.model, prompt=st.prompt,
                                            rater=st.rater, n_models=panel.n_models, rng=rng,
                                            n_resamples=PIGEONHOLE_RESAMPLES)
        add("boot:mean:hit", ((m_lo <= t_pop) & (t_pop <= m_hi)).sum())
        add("boot:mean:n", t_pop.size)
        add("boot:mean:width", (m_hi - m_lo).sum())
        add("boot:diff:hit", ((d_lo <= d_pop) & (d_pop <= d_hi)).sum())
        add("boot:diff:n", d_pop.size)
        add("boot:diff:width", (d_hi - d_lo).sum())
        add(f"boot:apart:c{c}", d_lo[0] > 0)
        add(f"boot:wrong:c{c}", d_hi[0] < 0)
    return out


def _run_setting(scenario: str, setting: tuple[int, int, int], n_studies: int, pool, n_boot: int) -> dict:
    p, r, k = setting
    base = 1_100_000 + 10_000 * SETTINGS.index(setting) + 1_000_000 * list(SCENARIOS).index(scenario)
    jobs = [(scenario, p, r, k, base + s, s < n_boot) for s in range(n_studies)]
    total: dict[str, float] = {}
    for one in (pool.imap_unordered(_one_study, jobs, chunksize=8) if pool else map(_one_study, jobs)):
        for key, v in one.items():
            total[key] = total.get(key, 0.0) + v
    total["studies"] = n_studies
    total["boot_studies"] = min(n_boot, n_studies)
    return total


def _pct(t: dict, est: str, name: str) -> str:
    n = t.get(f"{est}:{name}:n", 0)
    return "—" if not n else f"{t[f'{est}:{name}:hit'] / n:.1%}"


def _w(t: dict, est: str, name: str) -> str:
    n = t.get(f"{est}:{name}:n", 0)
    return "—" if not n else f"{t[f'{est}:{name}:width'] / n:.2f}"


def small_panels(n_studies: int, *, processes: int = 2, scenarios=("pm0.5", "pm1.0", "notaste", "stretch"),
                 bootstrap_studies: int = 200) -> str:
    """Issue 11: coverage, widths, power and wrong-way verdicts over P × R × k, two methods."""
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool(processes) if processes > 1 else None
    for s in scenarios:
        crossed_truth(SCENARIOS[s])  # compute the truths once, before forking
    blocks = []
    try:
        for scenario in scenarios:
            rows_cov, rows_pow = [], []
            for setting in SETTINGS:
                t = _run_setting(scenario, setting, n_studies, pool, bootstrap_studies)
                print(f"  {scenario} {setting}: diff {_pct(t, 'random', 'diff')} mean {_pct(t, 'random', 'mean')} "
                      f"norm {_pct(t, 'random', 'norm')}", file=sys.stderr, flush=True)
                n = t["studies"]
                label = f"{setting[0]} / {setting[1]} / {setting[2]}"
                rows_cov.append([
                    label, f"{n} ({t['boot_studies']})",
                    _pct(t, "random", "mean"), _pct(t, "random", "norm"), _pct(t, "random", "diff"),
                    _pct(t, "random", "rawdiff"),
                    _pct(t, "panel", "mean"), _pct(t, "panel", "norm"), _pct(t, "panel", "diff"),
                    _pct(t, "boot", "mean"), _pct(t, "boot", "diff"),
                    f"{_w(t, 'random', 'mean')} / {_w(t, 'random', 'norm')} / {_w(t, 'random', 'diff')}",
                    f"{_w(t, 'panel', 'mean')} / {_w(t, 'panel', 'diff')}",
                    f"{_w(t, 'boot', 'mean')} / {_w(t, 'boot', 'diff')}",
                    int(t.get("random:mean:outside", 0) + t.get("random:norm:outside", 0)
                        + t.get("panel:mean:outside", 0) + t.get("panel:norm:outside", 0)),
                ])
                def pw(est, what, t=t, n=n):
                    n_ = t["boot_studies"] if est == "boot" else n
                    if not n_:
                        return "—"
                    return " / ".join(f"{t.get(f'{est}:{what}:c{c}', 0) / n_:.1%}" for c in (0, 1))
                rows_pow.append([label, n, pw("random", "apart"), pw("random", "wrong"),
                                 f"{t['random:wrong_any'] / (2 * n):.1%}",
                                 pw("panel", "apart"), pw("panel", "wrong"), f"{t['panel:wrong_any'] / (2 * n):.1%}",
                                 pw("boot", "apart"), pw("boot", "wrong"),
                                 f"{t['random:df_min'] / (2 * n):.1f}"])
            p = SCENARIOS[scenario]
            head = (f"#### Scenario {scenario}: prompt × model SD {p.interaction_sd}, rater × model taste SD "
                    f"{p.taste_sd}, leniency SD {p.leniency_sd} (r = {p.leniency_corr} across criteria), "
                    f"prompt SD {p.prompt_sd} (skewed), stretch log-SD {p.stretch_sd}, noise SD {p.noise_sd} "
                    f"(per-rater log-SD {p.noise_spread})")
            blocks.append(head + "\n\nCoverage of 95% intervals (every model, both criteria; differences: all 10 "
                          "pairs) and mean widths:\n\n" + table(
                ["P / R / k", "studies (pigeonhole)", "means (new raters)", "normalized", "differences (adjusted)",
                 "differences (plain)", "means (this panel)", "normalized (panel)", "differences (panel)",
                 "pigeonhole: means", "pigeonhole: differences", "width: mean / norm / diff (new raters)",
                 "width: mean / diff (panel)", "width: pigeonhole mean / diff", "intervals outside 1–10"],
                rows_cov) + "\n\nTop two told apart (criterion 1: true gap 0.3 / criterion 2: 0.4), told apart "
                "the wrong way, and boards with any wrong-way verdict among the 10 pairs:\n\n" + table(
                ["P / R / k", "studies", "apart (new raters)", "wrong way", "any wrong verdict",
                 "apart (this panel)", "wrong way (panel)", "any wrong (panel)", "pigeonhole apart",
                 "pigeonhole wrong way", "smallest d.f. (mean)"], rows_pow))
    finally:
        if pool:
            pool.close()
            pool.join()
    return "\n\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per row (>= 200 for the claim)")
    parser.add_argument("--coverage-studies", type=int, default=1000,
                        help="studies per coverage row (misses correlate within a study, so more than 200 are needed "
                             "for a ±1.5% estimate)")
    parser.add_argument("--active-runs", type=int, default=100)
    parser.add_argument("--active-seed", type=int, default=40_000,
                        help="first seed of the active-vs-balanced runs (the recorded table uses 40000; another "
                             "value gives a held-out check)")
    parser.add_argument("--quick", action="store_true", help="20 studies / 6 runs: a smoke run")
    parser.add_argument("--only", choices=["ranking", "coverage", "biased", "active", "small"], help="run one table")
    parser.add_argument("--small-studies", type=int, default=500, help="studies per setting of the issue-11 grid")
    parser.add_argument("--scenarios", default="pm0.5,pm1.0,notaste,stretch", help="issue-11 scenarios to run")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--bootstrap-studies", type=int, default=200,
                        help="of the issue-11 studies, how many also run the pigeonhole bootstrap (the compared method)")
    args = parser.parse_args()
    n, runs = (20, 6) if args.quick else (args.studies, args.active_runs)
    n_cov = 20 if args.quick else max(args.coverage_studies, 200)
    for name, title, fn, arg in (
        ("ranking", "Ranking recovered (5 models, 40 raters)", ranking_recovery, n),
        ("coverage", "95% CI coverage of the true means (5 models)", coverage, n_cov),
        ("biased", "30% of raters harsh by 3 points, 70% of their ratings on the two best models", biased_raters, n),
        ("active", "Ratings until every 95% CI is apart (200 prompts, checked every 20 ratings)", active_vs_balanced, runs),
        ("small", "Small panels (issue 11): P prompts / R raters / k ratings per image, 5 models", small_panels,
         20 if args.quick else args.small_studies),
    ):
        if args.only and name != args.only:
            continue
        start = time.perf_counter()
        if name == "active":
            body = fn(arg, seed=args.active_seed)
        elif name == "small":
            body = fn(arg, processes=args.processes, scenarios=tuple(args.scenarios.split(",")),
                      bootstrap_studies=args.bootstrap_studies)
        else:
            body = fn(arg)
        print(f"### {title}\n\n{body}\n\n_{time.perf_counter() - start:.0f} s_\n", flush=True)


if __name__ == "__main__":
    main()
