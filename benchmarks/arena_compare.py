"""Pairs at Chatbot Arena's scale: evalsite's Bradley–Terry beside FastChat's on the same battles.

    python benchmarks/arena_compare.py --fastchat /path/to/FastChat [--battles 1000000] [--studies 10]

Each simulated study is one set of battles (side-by-side answers): 5 models, ``--prompts``
prompts, a prompt × model interaction (SD ``--interaction`` on the logit scale: some prompts
suit some models), each battle a random prompt and a random pair of models. The estimand is
the Bradley–Terry strength of each model over the population of prompts (computed from the
population's mean win probabilities on 200,000 fresh prompts), centred on mean 0.

Both methods see the same battles:

* evalsite: ``ratings.results.stats.bradley_terry`` (MM fit; bootstrap over prompts, the
  independent units);
* FastChat: ``compute_bt`` and ``compute_bootstrap_bt`` from
  ``fastchat/serve/monitor/rating_systems.py`` (L-BFGS fit; bootstrap over battles). PyPI's
  ``fschat`` (0.2.36) predates that file, so pass a FastChat checkout with ``--fastchat``
  (``git clone https://github.com/lm-sys/FastChat``); only that one file is loaded from it.
  Without a checkout, an installed ``fschat`` 0.2.36 is used as published: its
  ``fastchat/serve/monitor/elo_analysis.py`` has the same Bradley–Terry MLE
  (``compute_elo_mle_with_tie``, scikit-learn's logistic regression) and the same bootstrap over
  battles (``get_bootstrap_result``): ``pip install fschat==0.2.36 scikit-learn plotly pytz psutil``
  beside torch, transformers and accelerate, which its imports pull in.

Prints a markdown table: seconds per study (fit + intervals) and coverage of the 95% intervals
of the centred strengths (benchmarks/RESULTS.md, "Pairs at arena scale").
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRUE_STRENGTH = np.array([0.4, 0.2, 0.0, -0.2, -0.4])  # natural-log BT scale, best first


def load_fastchat(path: str | None):
    """FastChat's rating_systems module, from a checkout (or an installed fschat that has it)."""
    if path:
        file = Path(path) / "fastchat" / "serve" / "monitor" / "rating_systems.py"
        if not file.is_file():
            sys.exit(f"arena_compare: {file} not found (pass the root of a FastChat checkout)")
        spec = importlib.util.spec_from_file_location("fastchat_rating_systems", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its bootstrap pickles fit_bt into a process pool
        spec.loader.exec_module(module)
        return module
    try:
        from fastchat.serve.monitor import rating_systems  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return rating_systems
    try:  # PyPI's fschat 0.2.36: the same MLE and bootstrap, in the older module
        from fastchat.serve.monitor import elo_analysis  # type: ignore[import-not-found]
    except ImportError as exc:
        sys.exit(f"arena_compare: FastChat is needed ({exc}): pass --fastchat /path/to/FastChat, or "
                 "pip install fschat==0.2.36 scikit-learn plotly pytz psutil (with torch, transformers, accelerate)")
    return elo_analysis


def fastchat_functions(rs):
    """(name, fit, bootstrap(df, rounds)) of whichever FastChat module was loaded."""
    if hasattr(rs, "compute_bt"):
        return ("rating_systems.compute_bt + compute_bootstrap_bt", rs.compute_bt,
                lambda df, rounds: rs.compute_bootstrap_bt(df, num_round=rounds, num_cpu=min(2, os.cpu_count() or 1)))
    return ("fschat 0.2.36 elo_analysis.compute_elo_mle_with_tie + get_bootstrap_result", rs.compute_elo_mle_with_tie,
            lambda df, rounds: rs.get_bootstrap_result(df, rs.compute_elo_mle_with_tie, num_round=rounds))


def _bt_mle(wins: np.ndarray) -> np.ndarray:
    """Plain Bradley–Terry MLE (MM, no prior) of a win matrix; centred log strengths."""
    games = wins + wins.T
    p = np.ones(len(wins))
    for _ in range(10_000):
        new = wins.sum(axis=1) / (games / (p[:, None] + p[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < 1e-13:
            break
        p = new
    theta = np.log(p)
    return theta - theta.mean()


def population_truth(*, interaction: float, rng: np.random.Generator, n_prompts: int = 200_000) -> np.ndarray:
    """BT strengths the fit converges to over infinitely many prompts with balanced pairs."""
    m = len(TRUE_STRENGTH)
    u = rng.normal(0.0, interaction, size=(n_prompts, m))
    logit = (TRUE_STRENGTH + u)[:, :, None] - (TRUE_STRENGTH + u)[:, None, :]
    pbar = (1.0 / (1.0 + np.exp(-logit))).mean(axis=0)
    np.fill_diagonal(pbar, 0.0)
    return _bt_mle(pbar)


def battles(*, n: int, n_prompts: int, interaction: float, rng: np.random.Generator):
    """n battles: (prompt, model a, model b, outcome for a) with a prompt × model interaction."""
    m = len(TRUE_STRENGTH)
    u = rng.normal(0.0, interaction, size=(n_prompts, m))
    prompt = rng.integers(0, n_prompts, size=n)
    a = rng.integers(0, m, size=n)
    b = (a + rng.integers(1, m, size=n)) % m  # a different model, uniformly
    logit = TRUE_STRENGTH[a] + u[prompt, a] - TRUE_STRENGTH[b] - u[prompt, b]
    outcome = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return prompt, a, b, outcome


def run_evalsite(prompt, a, b, outcome, n_models: int):
    from ratings.results import stats

    t0 = time.perf_counter()
    table = stats.bradley_terry(left_model=a, right_model=b, outcome=outcome, prompt=prompt, n_models=n_models)
    return time.perf_counter() - t0, table.strength, table.ci_low, table.ci_high


def run_fastchat(rs, a, b, outcome, n_models: int, rounds: int):
    import pandas as pd

    names = np.array([f"m{i}" for i in range(n_models)])
    t0 = time.perf_counter()
    df = pd.DataFrame({"model_a": names[a], "model_b": names[b],
                       "winner": np.where(outcome == 1.0, "model_a", "model_b")})
    _, fit, bootstrap = fastchat_functions(rs)
    point = fit(df)
    boot = bootstrap(df, rounds)
    seconds = time.perf_counter() - t0
    to_theta = math.log(10.0) / 400.0  # Elo points (base 10, scale 400) -> natural log strength
    est = point.reindex(names).to_numpy() * to_theta
    draws = boot[list(names)].to_numpy() * to_theta
    draws = draws - draws.mean(axis=1, keepdims=True)
    est = est - est.mean()
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    return seconds, est, lo, hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fastchat", help="root of a FastChat checkout (for rating_systems.py)")
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--interaction", type=float, default=0.5, help="prompt × model SD (logit scale)")
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100, help="FastChat bootstrap rounds (its default)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    rs = load_fastchat(args.fastchat)
    rng = np.random.default_rng(args.seed)
    truth = population_truth(interaction=args.interaction, rng=rng)
    m = len(TRUE_STRENGTH)
    rows = {"evalsite": [], "FastChat": []}
    for _ in range(args.studies):
        prompt, a, b, outcome = battles(n=args.battles, n_prompts=args.prompts, interaction=args.interaction, rng=rng)
        for name, result in (("evalsite", run_evalsite(prompt, a, b, outcome, m)),
                             ("FastChat", run_fastchat(rs, a, b, outcome, m, args.rounds))):
            seconds, est, lo, hi = result
            covered = (lo <= truth) & (truth <= hi)
            top_apart = lo[0] > hi[1]  # model 0 is truly best, model 1 second
            rows[name].append((seconds, covered.mean(), float(np.mean(hi - lo)), top_apart,
                               float(np.abs(est - truth).max())))

    print(f"{args.studies} studies × {args.battles:,} battles, {m} models, {args.prompts} prompts, "
          f"prompt × model SD {args.interaction} (logit); 95% intervals of centred BT strengths; "
          f"FastChat: {fastchat_functions(rs)[0]}\n")
    print("| method | intervals from | s/study (fit + CI), median | coverage (goal 95%) | mean width "
          "| top two told apart | max |error| of the fit |")
    print("|---|---|---|---|---|---|---|")
    for name, how in (("evalsite", "bootstrap over prompts"), ("FastChat", f"bootstrap over battles, {args.rounds} rounds")):
        r = np.array(rows[name], dtype=float)
        print(f"| {name} | {how} | {np.median(r[:, 0]):.2f} | {100 * r[:, 1].mean():.0f}% "
              f"| {r[:, 2].mean():.3f} | {100 * r[:, 3].mean():.0f}% | {r[:, 4].mean():.3f} |")


if __name__ == "__main__":
    main()
