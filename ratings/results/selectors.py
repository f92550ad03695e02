"""Reads for the results: ratings as arrays, the leaderboard (computed once, cached), its per-model CSV table.

The heavy lifting is ``ratings.results.stats``; this module only turns database rows into
integer-coded numpy arrays and the stats' answers into plain dicts for pages, CSV and
commands. The leaderboard is cached under a *ratings version* (count and last id of the
study's ratings, the excluded panelists, the criteria and the finished generations), so
a new rating, an exclusion or a new image invalidates it and nothing else does.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import Case, Count, IntegerField, Max, Value, When
from django.utils import timezone

from generation.models import Generation, GenerationStatus, ImageModel, Origin
from prompts.models import Prompt

from ..models import Criterion, Panelist, Rating, Side, Study, StudyStatus
from ..selectors import GOLD_FAIL_SCORE, GOLD_FLAG_BELOW, PROMPT_ACCURACY_KEY

CACHE_SECONDS = 7 * 24 * 3600
N_RESAMPLES = 2000
CATEGORY_RESAMPLES = 1000
NO_CATEGORY = "(no category)"


# --------------------------------------------------------------------------- access


def results_visible_to_panelists(*, study: Study) -> bool:
    """Panelists see results only once the study is closed and staff made them public."""
    return study.status == StudyStatus.CLOSED and study.results_public


# --------------------------------------------------------------------------- arrays


@dataclass
class RatingArrays:
    """One entry per rating (a score of one image on one criterion)."""

    rating_id: np.ndarray
    score: np.ndarray
    criterion: np.ndarray  # criterion ids
    generation: np.ndarray
    model: np.ndarray  # model ids
    prompt: np.ndarray  # prompt ids (of the image)
    panelist: np.ndarray
    side: np.ndarray  # 0 single, 1 left, 2 right
    assignment: np.ndarray
    is_gold: np.ndarray
    excluded: np.ndarray
    simulated: np.ndarray

    def take(self, mask: np.ndarray) -> RatingArrays:
        return RatingArrays(**{k: v[mask] for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return int(self.score.size)


_SIDE_CODE = {Side.SINGLE: 0, Side.LEFT: 1, Side.RIGHT: 2}
_ARRAY_FIELDS = (
    "id", "score", "criterion_id", "generation_id", "generation__model_id", "generation__prompt_id", "panelist_id",
    "side_code", "assignment_id", "assignment__is_gold", "panelist__excluded", "is_simulated",
)


def rating_arrays(*, study: Study) -> RatingArrays:
    """Every rating of a study as arrays, fetched through one cursor (no model instances)."""
    side_code = Case(*(When(side=side, then=Value(code)) for side, code in _SIDE_CODE.items()),
                     default=Value(0), output_field=IntegerField())
    qs = Rating.objects.filter(study=study).order_by().annotate(side_code=side_code).values_list(*_ARRAY_FIELDS)
    sql, params = qs.query.sql_with_params()
    chunks: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(100_000)
            if not rows:
                break
            chunks.append(np.array(rows, dtype=np.int64))
    data = np.concatenate(chunks) if chunks else np.zeros((0, len(_ARRAY_FIELDS)), dtype=np.int64)
    cols = data.T
    return RatingArrays(
        rating_id=cols[0], score=cols[1], criterion=cols[2], generation=cols[3], model=cols[4], prompt=cols[5],
        panelist=cols[6], side=cols[7], assignment=cols[8], is_gold=cols[9].astype(bool),
        excluded=cols[10].astype(bool), simulated=cols[11].astype(bool),
    )


def _index_of(values: np.ndarray, ids: list[int]) -> np.ndarray:
    """Position of each value in ``ids`` (every value must be there), vectorised."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(ids_arr)
    return order[np.searchsorted(ids_arr[order], values)]


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique values, index of each value into them)."""
    uniq, inv = np.unique(values, return_inverse=True)
    return uniq, inv.reshape(-1)


# --------------------------------------------------------------------------- version / cache


def ratings_version(*, study: Study) -> str:
    """Changes whenever anything the leaderboard shows could change."""
    agg = Rating.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
    excluded = list(Panelist.objects.filter(study=study, excluded=True).order_by("id").values_list("id", flat=True))
    crits = list(Criterion.objects.filter(study=study).order_by("id").values_list("id", "key", "name", "order"))
    gens = Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE).aggregate(
        n=Count("id"), last=Max("finished_at")
    )
    key = repr((agg["n"], agg["last"], excluded, crits, gens["n"], gens["last"], study.name))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def leaderboard_get(*, study: Study, use_cache: bool = True) -> dict:
    """The leaderboard of a study: from the cache when nothing changed, else computed and cached."""
    key = f"results:leaderboard:{study.pk}:{ratings_version(study=study)}"
    if use_cache:
        hit = cache.get(key)
        if hit is not None:
            return hit
    board = leaderboard_compute(study=study)
    cache.set(key, board, CACHE_SECONDS)
    return board


# --------------------------------------------------------------------------- model facts


def _gib(value: int | None) -> float | None:
    return None if value is None else value / 2**30


def model_facts(*, study: Study) -> list[dict]:
    """Per model of the sweep: speed, peak VRAM, GPU, fast/plain mode and the settings it rendered with."""
    from . import stats  # numpy/scipy load only where statistics run (exports stay light)

    models = list(study.sweep.image_models.order_by("name"))
    seconds: dict[int, list[float]] = {m.pk: [] for m in models}
    info: dict[int, dict] = {m.pk: {"gpus": set(), "fast": set(), "offload": set(), "devices": set(),
                                    "alloc": None, "reserved": None, "snapshot": None, "origins": set()} for m in models}
    rows = (
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .order_by()
        .values_list("model_id", "seconds", "gpu_name", "fast_mode", "peak_vram_allocated", "peak_vram_reserved",
                     "offload_used", "device", "origin")
        .iterator(chunk_size=5000)
    )
    supplied: dict[int, list[float]] = {m.pk: [] for m in models}
    n_imported: dict[int, int] = {m.pk: 0 for m in models}
    for model_id, sec, gpu, fast, alloc, reserved, offload, device, origin in rows:
        if model_id not in info:
            continue
        info[model_id]["origins"].add(origin)
        if origin == Origin.IMPORTED:  # made elsewhere: its seconds are supplied, never our measurements
            n_imported[model_id] += 1
            if sec is not None:
                supplied[model_id].append(sec)
            continue
        if sec is not None:
            seconds[model_id].append(sec)
        d = info[model_id]
        if gpu:
            d["gpus"].add(gpu)
        if device:
            d["devices"].add(device)
        d["fast"].add(bool(fast))
        if offload:
            d["offload"].add(offload)
        if alloc is not None:
            d["alloc"] = max(d["alloc"] or 0, alloc)
        if reserved is not None:
            d["reserved"] = max(d["reserved"] or 0, reserved)
    out = []
    for m in models:
        speed = stats.speed_summary(seconds=seconds[m.pk])
        d = info[m.pk]
        fast = d["fast"] or {m.fast_mode}
        # every image of this model in the sweep was made elsewhere (import_ratings, import_images)
        imported = d["origins"] == {Origin.IMPORTED}
        out.append({
            "id": m.pk, "name": m.name, "slug": m.slug, "imported": imported,
            "speed_median": _finite(speed.median), "speed_mean": _finite(speed.mean), "n_images": speed.n,
            "gpu": ", ".join(sorted(d["gpus"])) or ("CPU" if d["devices"] == {"cpu"} else ""),
            "mode": "imported" if imported else ("fast" if fast == {True} else ("plain" if fast == {False} else "mixed")),
            "vram_allocated_gib": _gib(d["alloc"]), "vram_reserved_gib": _gib(d["reserved"]),
            "n_imported": n_imported[m.pk],
            "speed_supplied": _finite(stats.speed_summary(seconds=supplied[m.pk]).median) if supplied[m.pk] else None,
            "settings": {
                "steps": m.num_inference_steps, "guidance": m.guidance_scale, "size": f"{m.width}×{m.height}",
                "dtype": m.dtype, "quantization": m.quantization, "offload": m.offload,
                "offload_used": ", ".join(sorted(d["offload"])), "pipeline": m.pipeline_class or "auto",
                "source": m.source,
            },
        })
    return out


def _finite(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# --------------------------------------------------------------------------- the leaderboard


def _cell(table, i: int, norm=None) -> dict:
    cell = {
        "mean": _finite(table.mean[i]), "ci_low": _finite(table.ci_low[i]), "ci_high": _finite(table.ci_high[i]),
        "n": int(table.n_ratings[i]), "n_prompts": int(table.n_prompts[i]), "rank": int(table.rank[i]),
    }
    if norm is not None:
        cell.update({"norm_mean": _finite(norm.mean[i]), "norm_ci_low": _finite(norm.ci_low[i]),
                     "norm_ci_high": _finite(norm.ci_high[i])})
    return cell


def _pairs_of(a: RatingArrays) -> dict[str, np.ndarray]:
    """Left/right score of each pair answer and criterion, matched by (assignment, criterion)."""
    left = a.side == _SIDE_CODE[Side.LEFT]
    right = a.side == _SIDE_CODE[Side.RIGHT]
    key = lambda m: a.assignment[m] * 1_000_003 + a.criterion[m]  # noqa: E731
    _, li, ri = np.intersect1d(key(left), key(right), assume_unique=True, return_indices=True)
    lw, rw = np.flatnonzero(left)[li], np.flatnonzero(right)[ri]
    return {"criterion": a.criterion[lw], "left_model": a.model[lw], "right_model": a.model[rw],
            "left_score": a.score[lw], "right_score": a.score[rw], "prompt": a.prompt[lw]}


def criterion_seed(*, key: str) -> int:
    """The bootstrap seed of a criterion: from its key, not its database id, so the same ratings give the
    same intervals in any study (an imported copy of a study gives the same leaderboard)."""
    return zlib.crc32(key.encode("utf-8"))


def leaderboard_compute(*, study: Study) -> dict:
    """Everything the leaderboard page, its CSV and the ``leaderboard`` command show (plain data)."""
    from . import stats  # numpy/scipy load only where statistics run (exports stay light)

    facts = model_facts(study=study)
    criteria = list(Criterion.objects.filter(study=study).order_by("order", "id"))
    all_ratings = rating_arrays(study=study)
    # the score table: no attention-check (gold) answers, no excluded panelists
    a = all_ratings.take(~all_ratings.is_gold & ~all_ratings.excluded)
    model_ids = [f["id"] for f in facts]
    known = set(model_ids)
    extra = sorted(set(np.unique(a.model).tolist()) - known)  # e.g. a fallback model's images
    if extra:
        for m in ImageModel.objects.filter(pk__in=extra):
            facts.append({"id": m.pk, "name": m.name, "slug": m.slug, "imported": False, "speed_median": None, "speed_mean": None,
                          "n_images": 0, "gpu": "", "mode": "", "vram_allocated_gib": None,
                          "vram_reserved_gib": None, "settings": {}})
        model_ids = [f["id"] for f in facts]
    m_index = {m: i for i, m in enumerate(model_ids)}
    n_models = len(model_ids)
    model_of = _index_of(a.model, model_ids)
    prompt_ids, prompt_of = _dense(a.prompt)
    panelist_ids, rater_of = _dense(a.panelist)
    categories = dict(Prompt.objects.filter(pk__in=prompt_ids.tolist()).values_list("id", "category"))
    prompt_category = np.array([categories.get(p) or NO_CATEGORY for p in prompt_ids.tolist()], dtype=object)

    scores: dict[str, list[dict]] = {}
    agreement: dict[str, dict] = {}
    by_category: dict[str, dict[str, list[dict]]] = {}
    for c in criteria:
        sel = a.criterion == c.pk
        y, mm, pp, rr = a.score[sel], model_of[sel], prompt_of[sel], rater_of[sel]
        items, item_of = _dense(a.generation[sel])
        raw = stats.model_means(scores=y, model=mm, prompt=pp, rater=rr if y.size else None, n_models=n_models,
                                n_prompts=max(len(prompt_ids), 1), n_resamples=N_RESAMPLES, seed=criterion_seed(key=c.key))
        z = stats.normalize_scores(scores=y, rater=rr, item=item_of)
        norm = stats.model_means(scores=z, model=mm, prompt=pp, rater=rr if y.size else None, n_models=n_models,
                                 n_prompts=max(len(prompt_ids), 1), n_resamples=N_RESAMPLES, seed=criterion_seed(key=c.key))
        scores[c.key] = [_cell(raw, i, norm) for i in range(n_models)]
        agreement[c.key] = {
            "alpha": _finite(stats.krippendorff_interval_alpha(scores=y, rater=rr, item=item_of)) if y.size else None,
            "n_ratings": int(y.size), "n_images": int(items.size),
            "n_multi": int((np.bincount(item_of) >= 2).sum()) if y.size else 0,
        }
        cats = prompt_category[pp] if y.size else np.array([], dtype=object)
        for cat in sorted(set(cats.tolist())):
            cs = cats == cat
            t = stats.model_means(scores=y[cs], model=mm[cs], prompt=pp[cs], rater=rr[cs], n_models=n_models,
                                  n_prompts=max(len(prompt_ids), 1), n_resamples=CATEGORY_RESAMPLES, seed=criterion_seed(key=c.key))
            by_category.setdefault(cat, {})[c.key] = [_cell(t, i) for i in range(n_models)]

    ocr = ocr_results(study=study, model_ids=model_ids, a=a, criteria=criteria)
    pairs = _pair_results(a=a, criteria=criteria, m_index=m_index, n_models=n_models)
    raters = _rater_summary(all_ratings=all_ratings, a=a, criteria=criteria, study=study)
    n_total = len(all_ratings)
    return {
        "study_id": study.pk, "study_name": study.name,
        "computed_at": timezone.now().isoformat(timespec="seconds"),
        "criteria": [{"id": c.pk, "key": c.key, "name": c.name} for c in criteria],
        "models": facts, "scores": scores, "by_category": by_category, "agreement": agreement,
        "pairs": pairs, "raters": raters, "ocr": ocr,
        "n_ratings_total": n_total, "n_ratings_used": len(a),
        "n_ratings_excluded": int(all_ratings.excluded.sum()), "n_ratings_gold": int(all_ratings.is_gold.sum()),
        "n_ratings_simulated": int(all_ratings.simulated.sum()),
        "n_prompts": int(len(prompt_ids)), "n_resamples": N_RESAMPLES,
    }


TEXT_RENDERING_KEY = "text_rendering"


def ocr_results(*, study: Study, model_ids: list[int], a: RatingArrays, criteria: list[Criterion]) -> dict:
    """OCR text accuracy per model (100 × (1 − character error rate) of images whose prompt asks for text),
    with a 95% CI from the same bootstrap over prompts as the human scores (new prompts of this kind),
    the share of images with every expected word, and its Spearman correlation with the panel's
    text-rendering score over images (per study)."""
    from scipy.stats import spearmanr

    from . import stats

    rows = list(
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .exclude(prompt__expected_text="").order_by()
        .values_list("id", "model_id", "prompt_id", "ocr_cer", "ocr_all_words", "ocr_error")
    )
    checked = [r for r in rows if r[3] is not None and r[1] in model_ids]
    n_models = len(model_ids)
    out: dict = {"n_images": len(rows), "n_checked": len(checked),
                 "n_failed": sum(1 for r in rows if r[5]), "cells": [None] * n_models,
                 "all_words": [None] * n_models, "correlation": None}
    if not checked:
        return out
    gen = np.array([r[0] for r in checked], dtype=np.int64)
    model = _index_of(np.array([r[1] for r in checked], dtype=np.int64), model_ids)
    _, prompt = _dense(np.array([r[2] for r in checked], dtype=np.int64))
    accuracy = 100.0 * (1.0 - np.array([r[3] for r in checked], dtype=np.float64))
    words = np.array([bool(r[4]) for r in checked], dtype=np.float64) * 100.0
    table = stats.model_means(scores=accuracy, model=model, prompt=prompt, n_models=n_models,
                              n_prompts=int(prompt.max()) + 1, n_resamples=N_RESAMPLES, seed=18)
    out["cells"] = [_cell(table, i) for i in range(n_models)]
    out["all_words"] = [_finite(words[model == i].mean()) if (model == i).any() else None for i in range(n_models)]
    text_crit = [c.pk for c in criteria if c.key == TEXT_RENDERING_KEY]
    if text_crit:
        sel = a.criterion == text_crit[0]
        if sel.any():
            ids, inv = _dense(a.generation[sel])
            human = np.bincount(inv, weights=a.score[sel]) / np.bincount(inv)
            both = np.isin(gen, ids)
            if both.sum() >= 3:
                h = human[np.searchsorted(ids, gen[both])]
                rho = spearmanr(h, accuracy[both]).statistic
                out["correlation"] = {"spearman": _finite(float(rho)), "n_images": int(both.sum())}
    return out


def _pair_results(*, a: RatingArrays, criteria: list[Criterion], m_index: dict[int, int], n_models: int) -> dict:
    from . import stats  # numpy/scipy load only where statistics run (exports stay light)

    pr = _pairs_of(a)
    out: dict = {"n_pairs": 0, "by_criterion": {}, "position_bias": None}
    if pr["criterion"].size == 0:
        return out
    ids = sorted(m_index, key=m_index.get)
    lm, rm = _index_of(pr["left_model"], ids), _index_of(pr["right_model"], ids)
    _, pp = _dense(pr["prompt"])
    out["n_pairs"] = int(pr["criterion"].size)
    for c in criteria:
        sel = pr["criterion"] == c.pk
        if not sel.any():
            continue
        outcome = stats.pair_outcomes(left_score=pr["left_score"][sel], right_score=pr["right_score"][sel])
        bt = stats.bradley_terry(left_model=lm[sel], right_model=rm[sel], outcome=outcome, prompt=pp[sel],
                                 n_models=n_models, n_resamples=N_RESAMPLES, seed=criterion_seed(key=c.key))
        out["by_criterion"][c.key] = {
            "strength": [_finite(x) for x in bt.strength], "ci_low": [_finite(x) for x in bt.ci_low],
            "ci_high": [_finite(x) for x in bt.ci_high], "rank": [int(x) for x in bt.rank],
            "n_pairs": [int(x) for x in bt.n_pairs],
            "win_rate": [[_finite(x) for x in row] for row in bt.win_rate],
            "games": [[int(x) for x in row] for row in bt.games],
            "ties": int((outcome == 0.5).sum()), "n": int(sel.sum()),
        }
    pb = stats.position_bias(left_score=pr["left_score"], right_score=pr["right_score"], prompt=pp,
                             n_resamples=N_RESAMPLES)
    out["position_bias"] = {k: _finite(v) if isinstance(v, float) else v for k, v in pb.__dict__.items()}
    return out


def _rater_summary(*, all_ratings: RatingArrays, a: RatingArrays, criteria: list[Criterion], study: Study) -> dict:
    """Panel size, exclusions, gold pass rates and agreement with the others (per panelist, then summarised)."""
    from . import stats  # numpy/scipy load only where statistics run (exports stay light)

    panelists = list(Panelist.objects.filter(study=study).values_list("id", "pseudonym", "excluded", "is_simulated"))
    crit_key = {c.pk: c.key for c in criteria}
    # gold: prompt accuracy of an image shown with the wrong prompt should be low
    gold = all_ratings.take(all_ratings.is_gold & np.isin(all_ratings.criterion,
                                                          [c for c, k in crit_key.items() if k == PROMPT_ACCURACY_KEY]))
    gold_n = np.bincount(gold.panelist, minlength=1) if len(gold) else np.zeros(1, int)
    gold_fail = np.bincount(gold.panelist, weights=gold.score >= GOLD_FAIL_SCORE, minlength=1) if len(gold) else gold_n
    # consensus: each rating against the mean of the others on the same image and criterion
    corr_by_panelist: dict[int, float] = {}
    if len(a):
        pids, r_of = _dense(a.panelist)
        _, item_of = _dense(a.generation * 1_000_003 + a.criterion)
        q = stats.rater_quality(scores=a.score, rater=r_of, item=item_of, n_raters=len(pids))
        corr_by_panelist = {int(p): float(c) for p, c in zip(pids.tolist(), q.consensus_r, strict=True) if not math.isnan(c)}
    counts = dict(zip(*np.unique(all_ratings.panelist, return_counts=True), strict=True)) if len(all_ratings) else {}
    rows = []
    for pid, pseudonym, excluded, simulated in panelists:
        n_gold = int(gold_n[pid]) if pid < gold_n.size else 0
        failed = int(gold_fail[pid]) if pid < len(gold_fail) else 0
        pass_rate = (n_gold - failed) / n_gold if n_gold else None
        rows.append({
            "id": pid, "pseudonym": pseudonym, "excluded": excluded, "simulated": simulated,
            "n_ratings": int(counts.get(pid, 0)), "gold_n": n_gold, "gold_pass_rate": pass_rate,
            "flagged": pass_rate is not None and pass_rate < GOLD_FLAG_BELOW,
            "consensus_r": corr_by_panelist.get(pid),
        })
    active = [r for r in rows if r["n_ratings"]]
    rs = [r["consensus_r"] for r in active if r["consensus_r"] is not None and not r["excluded"]]
    return {
        "n_panelists": len(active), "n_excluded": sum(r["excluded"] for r in active),
        "n_simulated": sum(r["simulated"] for r in active), "n_flagged": sum(r["flagged"] for r in active),
        "median_consensus_r": float(np.median(rs)) if rs else None,
        "lowest": sorted((r for r in active if r["consensus_r"] is not None),
                         key=lambda r: r["consensus_r"])[:5],
        "gold_n": int(len(gold)),
    }


# --------------------------------------------------------------------------- the per-model CSV table


def board_order(*, board: dict) -> list[int]:
    """Model indices best first by the first criterion (rank, then mean); models without ratings last."""

    def key(i: int):
        if not board["criteria"]:
            return (0, 0, 0, board["models"][i]["name"])
        cell = board["scores"][board["criteria"][0]["key"]][i]
        return (cell["mean"] is None, cell["rank"], -(cell["mean"] or 0), board["models"][i]["name"])

    return sorted(range(len(board["models"])), key=key)


def leaderboard_rows(*, board: dict) -> tuple[list[str], list[list]]:
    """The per-model table: speed, VRAM and, per criterion, mean, CI low, CI high, n (and rank)."""
    header = ["model", "model_slug", "speed_median_s", "speed_mean_s", "n_images", "gpu", "mode",
              "peak_vram_allocated_gib", "peak_vram_reserved_gib"]
    for c in board["criteria"]:
        k = c["key"]
        header += [f"{k}_mean", f"{k}_ci_low", f"{k}_ci_high", f"{k}_n", f"{k}_n_prompts", f"{k}_rank",
                   f"{k}_normalized_mean"]
    header += ["ocr_text_accuracy_pct", "ocr_ci_low", "ocr_ci_high", "ocr_n_images", "ocr_all_words_pct"]
    rows = []
    for i in board_order(board=board):
        m = board["models"][i]
        row = [m["name"], m["slug"], _r(m["speed_median"], 3), _r(m["speed_mean"], 3), m["n_images"], m["gpu"],
               m["mode"], _r(m["vram_allocated_gib"], 2), _r(m["vram_reserved_gib"], 2)]
        for c in board["criteria"]:
            cell = board["scores"][c["key"]][i]
            row += [_r(cell["mean"], 3), _r(cell["ci_low"], 3), _r(cell["ci_high"], 3), cell["n"], cell["n_prompts"],
                    cell["rank"], _r(cell.get("norm_mean"), 3)]
        ocr = (board.get("ocr") or {}).get("cells") or [None] * len(board["models"])
        cell = ocr[i] or {}
        row += [_r(cell.get("mean"), 2), _r(cell.get("ci_low"), 2), _r(cell.get("ci_high"), 2), cell.get("n", 0),
                _r(((board.get("ocr") or {}).get("all_words") or [None] * len(board["models"]))[i], 1)]
        rows.append(row)
    return header, rows


def _r(x, digits: int):
    return "" if x is None else round(x, digits)


def study_rating_count(*, study: Study) -> int:
    return Rating.objects.filter(study=study).count()

