"""Reads for the results: ratings as arrays and the leaderboard (computed once, cached).

The heavy lifting is ``ratings.results.stats``; this module only turns database rows into
integer-coded numpy arrays and the stats' answers into a typed ``board.Board`` for pages, CSV,
charts and commands. The leaderboard is cached under a *ratings version* (count and last id of the
study's ratings, the excluded panelists, the criteria and the finished generations), so
a new rating, an exclusion or a new image invalidates it and nothing else does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Count, ExpressionWrapper, F, IntegerField, Max, Value, When
from django.utils import timezone
from scipy.stats import spearmanr

from generation.models import Generation, GenerationStatus, GpuPrice, ImageModel, Origin, VramProfile, VramProfileStatus
from generation.selectors import vram_profile_fits, vram_profiles_latest_done
from prompts.models import Prompt

from .. import arrays
from ..models import Assignment, Criterion, Panelist, Rating, RatingChange, Side, Study, StudyStatus
from ..quality import StudyScores, panelist_quality
from ..selectors import PROMPT_ACCURACY_KEY
from . import crossed, stats
from .board import (
    BOARD_FORMAT,
    Agreement,
    Board,
    CardFit,
    CriterionNotes,
    CriterionRef,
    Difference,
    EstimandResults,
    ModelFacts,
    ModelSettings,
    OcrCorrelation,
    OcrResults,
    PairResult,
    Pairs,
    PositionBias,
    RaterRow,
    RaterSummary,
    ScoreCell,
    VramFit,
)
from .cost import model_cost

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


logger = logging.getLogger(__name__)

_SIDE_CODE = {Side.SINGLE: 0, Side.LEFT: 1, Side.RIGHT: 2}
# The rating's own columns only: the model, prompt, gold flag and exclusion come from the small
# tables (generations, gold assignments, panelists) looked up in numpy, not from three joins. The score
# (1-10), the side and the simulated flag travel packed in one column (the fetch costs per value).
_ARRAY_FIELDS = ("flags", "criterion_id", "generation_id", "panelist_id", "assignment_id")


def _flags() -> ExpressionWrapper:
    side_code = Case(*(When(side=side, then=Value(code)) for side, code in _SIDE_CODE.items()),
                     default=Value(0), output_field=IntegerField())
    simulated = Case(When(is_simulated=True, then=Value(64)), default=Value(0), output_field=IntegerField())
    return ExpressionWrapper(F("score") + side_code * 16 + simulated, output_field=IntegerField())


def _unpack_flags(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, side code, simulated) from the packed column."""
    return flags & 15, (flags >> 4) & 3, ((flags >> 6) & 1).astype(bool)


def rating_columns_sql(*, study: Study) -> tuple[str, tuple]:
    """The query behind rating_arrays (its columns: _ARRAY_FIELDS)."""
    qs = Rating.objects.filter(study=study).order_by().annotate(flags=_flags()).values_list(*_ARRAY_FIELDS)
    return qs.query.sql_with_params()


def _int64_columns_by_cursor(*, sql: str, params, n_cols: int) -> np.ndarray:
    chunks: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(100_000)
            if not rows:
                break
            chunks.append(np.array(rows, dtype=np.int64))
    data = np.concatenate(chunks) if chunks else np.zeros((0, n_cols), dtype=np.int64)
    return data.T


def _int64_columns_by_aggregate(*, sql: str, params, n_cols: int) -> np.ndarray:
    """PostgreSQL: each column packed by the server into one bytea (string_agg of int8send, all columns
    in one pass, so they stay aligned row by row) and read into numpy whole.

    The client does nothing per row: at a million ratings it spends ~0.15 s of CPU against ~1.4 s for
    the COPY stream (psycopg hands COPY over a row per call), and while the server aggregates this
    thread waits in libpq with the GIL released. A bytea holds at most 1 GB (about 130 million ratings
    a column): past that the server refuses, and the caller falls back to the COPY stream.
    """
    names = [f"c{i}" for i in range(n_cols)]
    select = ", ".join(f"string_agg(int8send(COALESCE({n}::int8, 0)), ''::bytea)" for n in names)
    connection.ensure_connection()
    # a server-binding cursor of Django's own connection (same transaction): Django's default
    # client-side cursor reads results as text, where a bytea arrives hex-encoded
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(f"SELECT {select} FROM ({sql}) AS q({', '.join(names)})", params, binary=True)
        row = cursor.fetchone()
    if row is None or row[0] is None:  # no ratings
        return np.zeros((n_cols, 0), dtype=np.int64)
    return np.stack([np.frombuffer(col, dtype=">i8").astype(np.int64) for col in row])


def _int64_columns_pg(*, sql: str, params, n_cols: int) -> np.ndarray:
    """The server-side aggregate; the COPY stream when a column would not fit one bytea."""
    try:
        with transaction.atomic():  # a savepoint: the refusal must not abort the caller's transaction
            return _int64_columns_by_aggregate(sql=sql, params=params, n_cols=n_cols)
    except (psycopg.errors.ProgramLimitExceeded, psycopg.errors.OutOfMemory) as exc:  # raw psycopg: not wrapped
        logger.warning("ratings fetch: one bytea per column is too large (%s); using the COPY stream", exc)
        return _int64_columns_by_copy(sql=sql, params=params, n_cols=n_cols)


_PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _int64_columns_by_copy(*, sql: str, params, n_cols: int) -> np.ndarray:
    """PostgreSQL: the query's columns as int8, through COPY ... (FORMAT BINARY) straight into numpy.

    Every column is cast to int8 and NULL-free, so each row of the binary stream has one fixed
    layout (field count, then length + value per column) that one structured dtype reads: no
    Python object per value. About 10× faster than fetching a million rows as tuples.
    """
    names = [f"c{i}" for i in range(n_cols)]
    select = ", ".join(f"COALESCE({n}::int8, 0)" for n in names)
    copy_sql = f"COPY (SELECT {select} FROM ({sql}) AS q({', '.join(names)})) TO STDOUT (FORMAT BINARY)"
    buf = bytearray()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(copy_sql, params) as copy:
            for block in copy:
                buf += block
    if not buf.startswith(_PGCOPY_SIGNATURE):
        raise RuntimeError("unexpected COPY BINARY stream from PostgreSQL")
    header_ext = int.from_bytes(buf[15:19], "big")
    body = memoryview(buf)[19 + header_ext:-2]  # the trailer is a field count of -1
    row = np.dtype([("n", ">i2")] + [(f, t) for i in range(n_cols) for f, t in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))])
    records = np.frombuffer(body, dtype=row)
    if records.size and (np.any(records["n"] != n_cols) or any(np.any(records[f"l{i}"] != 8) for i in range(n_cols))):
        raise RuntimeError("unexpected row layout in the COPY BINARY stream")
    return np.stack([records[f"v{i}"].astype(np.int64) for i in range(n_cols)]) if records.size \
        else np.zeros((n_cols, 0), dtype=np.int64)


def _pairs(rows, n: int) -> np.ndarray:
    return np.array(list(rows), dtype=np.int64).reshape(-1, n).T


def rating_arrays(*, study: Study) -> RatingArrays:
    """Every rating of a study as arrays: one column-oriented fetch (COPY BINARY on PostgreSQL), no model instances."""
    sql, params = rating_columns_sql(study=study)
    fetch = _int64_columns_pg if connection.vendor == "postgresql" else _int64_columns_by_cursor
    flags, criterion, generation, panelist, assignment = fetch(sql=sql, params=params, n_cols=len(_ARRAY_FIELDS))
    score, side, simulated = _unpack_flags(flags)
    # the study's own sweep in one indexed query; an image from elsewhere (rare) by its id
    gens = _pairs(Generation.objects.filter(sweep_id=study.sweep_id).values_list("id", "model_id", "prompt_id"), 3)
    if generation.size and arrays.lookup(generation, gens[0], np.ones_like(gens[0]), default=0).min() == 0:
        other = np.setdiff1d(arrays.dense_codes(generation)[0], gens[0])
        gens = np.concatenate([gens, _pairs(Generation.objects.filter(pk__in=other.tolist())
                                            .values_list("id", "model_id", "prompt_id"), 3)], axis=1)
    pans = _pairs(Panelist.objects.filter(study=study).values_list("id", "excluded"), 2)
    gold = np.array(list(Assignment.objects.filter(study=study, is_gold=True).values_list("id", flat=True)),
                    dtype=np.int64)
    return RatingArrays(
        score=score, criterion=criterion, generation=generation,
        model=arrays.lookup(generation, gens[0], gens[1]), prompt=arrays.lookup(generation, gens[0], gens[2]),
        panelist=panelist, side=side, assignment=assignment, is_gold=np.isin(assignment, gold),
        excluded=arrays.lookup(panelist, pans[0], pans[1]).astype(bool), simulated=simulated,
    )


# --------------------------------------------------------------------------- version / cache


def ratings_version(*, study: Study) -> str:
    """Changes whenever anything the leaderboard shows could change."""
    agg = Rating.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
    excluded = list(Panelist.objects.filter(study=study, excluded=True).order_by("id").values_list("id", flat=True))
    crits = list(Criterion.objects.filter(study=study).order_by("id").values_list("id", "key", "name", "order"))
    gens = Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE).aggregate(
        n=Count("id"), last=Max("finished_at")
    )
    changed = RatingChange.objects.filter(rating__study=study).aggregate(last=Max("id"))["last"]  # changed answers
    profiles = list(VramProfile.objects.filter(image_model__sweeps=study.sweep_id, status=VramProfileStatus.DONE)
                    .order_by("id").values_list("id", flat=True))  # "Min VRAM" and the fits-on tables
    prices = list(GpuPrice.objects.order_by("gpu_name").values_list("gpu_name", "usd_per_hour"))  # $ per 1,000 images
    key = repr((agg["n"], agg["last"], changed, excluded, crits, gens["n"], gens["last"], study.name, str(study.estimand),
                profiles, prices))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def leaderboard_get(*, study: Study, use_cache: bool = True) -> Board:
    """The leaderboard of a study: from the cache when nothing changed, else computed and cached."""
    key = f"results:leaderboard:b{BOARD_FORMAT}:{study.pk}:{ratings_version(study=study)}"
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


@dataclass
class _Rendered:
    """What the finished generations of one model say (accumulated row by row)."""

    seconds: list[float] = field(default_factory=list)
    gpus: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    fast: set[bool] = field(default_factory=set)
    offload: set[str] = field(default_factory=set)
    alloc: int | None = None
    reserved: int | None = None
    origins: set[str] = field(default_factory=set)
    supplied: list[float] = field(default_factory=list)  # seconds that came with imported images
    n_imported: int = 0


def _rendered_by_model(*, study: Study, model_ids: list[int]) -> dict[int, _Rendered]:
    out = {pk: _Rendered() for pk in model_ids}
    rows = (
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .order_by()
        .values_list("model_id", "seconds", "gpu_name", "fast_mode", "peak_vram_allocated", "peak_vram_reserved",
                     "offload_used", "device", "origin")
        .iterator(chunk_size=5000)
    )
    for model_id, sec, gpu, fast, alloc, reserved, offload, device, origin in rows:
        d = out.get(model_id)
        if d is None:
            continue
        d.origins.add(origin)
        if origin == Origin.IMPORTED:  # made elsewhere: its seconds are supplied, never our measurements
            d.n_imported += 1
            if sec is not None:
                d.supplied.append(sec)
            continue
        if sec is not None:
            d.seconds.append(sec)
        if gpu:
            d.gpus.add(gpu)
        if device:
            d.devices.add(device)
        d.fast.add(bool(fast))
        if offload:
            d.offload.add(offload)
        if alloc is not None:
            d.alloc = max(d.alloc or 0, alloc)
        if reserved is not None:
            d.reserved = max(d.reserved or 0, reserved)
    return out


def _vram_fit(*, profile: VramProfile | None) -> VramFit | None:
    if profile is None:
        return None
    smallest = profile.report.get("min_card") or {}
    return VramFit(
        profile_id=profile.pk, gpu_name=profile.gpu_name,
        profiled_at=profile.finished_at.isoformat(timespec="seconds") if profile.finished_at else "",
        min_card_gb=smallest.get("card_gb"), min_setting=smallest.get("setting") or "",
        cards=tuple(CardFit(card_gb=r["card_gb"], setting=r["setting"] or "", seconds=r["seconds"],
                            peak_allocated_gib=r["peak_allocated_gib"], peak_reserved_gib=r["peak_reserved_gib"],
                            predicted=r["predicted"]) for r in vram_profile_fits(profile=profile)),
    )


def model_facts(*, study: Study) -> list[ModelFacts]:
    """Per model of the sweep: speed, peak VRAM, GPU, fast/plain mode and the settings it rendered with; its
    latest VRAM profile (Min VRAM, fits on) and what 1,000 images cost on the GPU it rendered on."""
    models = list(study.sweep.image_models.order_by("name"))
    rendered = _rendered_by_model(study=study, model_ids=[m.pk for m in models])
    profiles = vram_profiles_latest_done(model_ids=[m.pk for m in models])
    gpus = set().union(*(d.gpus for d in rendered.values()))
    prices = {name: float(usd) for name, usd in GpuPrice.objects.filter(gpu_name__in=gpus)
              .values_list("gpu_name", "usd_per_hour")}
    out = []
    for m in models:
        d = rendered[m.pk]
        speed = stats.speed_summary(seconds=d.seconds)
        fast = d.fast or {m.fast_mode}
        # every image of this model in the sweep was made elsewhere (import_ratings, import_images)
        imported = d.origins == {Origin.IMPORTED}
        cost, price, cost_note = ((None, None, "imported") if imported else model_cost(
            seconds_per_image=_finite(speed.median), gpus=d.gpus, on_cpu=d.devices == {"cpu"}, prices=prices))
        out.append(ModelFacts(
            id=m.pk, name=m.name, slug=m.slug, imported=imported,
            speed_median=_finite(speed.median), speed_mean=_finite(speed.mean), n_images=speed.n,
            gpu=", ".join(sorted(d.gpus)) or ("CPU" if d.devices == {"cpu"} else ""),
            mode="imported" if imported else ("fast" if fast == {True} else ("plain" if fast == {False} else "mixed")),
            vram_allocated_gib=_gib(d.alloc), vram_reserved_gib=_gib(d.reserved), n_imported=d.n_imported,
            speed_supplied=_finite(stats.speed_summary(seconds=d.supplied).median) if d.supplied else None,
            settings=ModelSettings(
                steps=m.num_inference_steps, guidance=m.guidance_scale, size=f"{m.width}×{m.height}",
                dtype=m.dtype, quantization=m.quantization, offload=m.offload,
                offload_used=", ".join(sorted(d.offload)), pipeline=m.pipeline_class or "auto", source=m.source,
            ),
            vram_fit=_vram_fit(profile=profiles.get(m.pk)),
            usd_per_hour=price, usd_per_1000_images=cost, cost_note=cost_note,
        ))
    return out


def _finite(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# --------------------------------------------------------------------------- the leaderboard


def _cell(table: stats.MeanTable, i: int, norm: stats.MeanTable | None = None) -> ScoreCell:
    return ScoreCell(
        mean=_finite(table.mean[i]), ci_low=_finite(table.ci_low[i]), ci_high=_finite(table.ci_high[i]),
        n=int(table.n_ratings[i]), n_prompts=int(table.n_prompts[i]), rank=int(table.rank[i]),
        norm_mean=None if norm is None else _finite(norm.mean[i]),
        norm_ci_low=None if norm is None else _finite(norm.ci_low[i]),
        norm_ci_high=None if norm is None else _finite(norm.ci_high[i]),
    )


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


@dataclass(frozen=True)
class _Inputs:
    """The study's ratings coded for the statistics: models in board order, prompts and raters dense."""

    models: list[ModelFacts]
    criteria: list[Criterion]
    all_ratings: RatingArrays
    a: RatingArrays  # the score table's ratings: no attention checks, no excluded panelists
    model_of: np.ndarray
    prompt_of: np.ndarray
    rater_of: np.ndarray
    n_prompts: int
    categories: list[str]  # the categories' names, sorted
    prompt_category: np.ndarray  # each dense prompt's category, an index into ``categories``

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def model_ids(self) -> list[int]:
        return [m.id for m in self.models]


def _models_with_ratings(*, facts: list[ModelFacts], a: RatingArrays) -> list[ModelFacts]:
    """The sweep's models, then any other model whose images were rated (e.g. a fallback's), with no facts."""
    extra = sorted(set(arrays.dense_codes(a.model)[0].tolist()) - {f.id for f in facts})
    if not extra:
        return facts
    return facts + [ModelFacts(id=m.pk, name=m.name, slug=m.slug) for m in ImageModel.objects.filter(pk__in=extra)]


def _leaderboard_inputs(*, study: Study) -> _Inputs:
    all_ratings = rating_arrays(study=study)
    a = all_ratings.take(~all_ratings.is_gold & ~all_ratings.excluded)
    models = _models_with_ratings(facts=model_facts(study=study), a=a)
    prompt_ids, prompt_of = arrays.dense_codes(a.prompt)
    _, rater_of = arrays.dense_codes(a.panelist)
    categories = dict(Prompt.objects.filter(pk__in=prompt_ids.tolist()).values_list("id", "category"))
    of_prompt = [categories.get(p) or NO_CATEGORY for p in prompt_ids.tolist()]
    names = sorted(set(of_prompt))
    code_of = {name: i for i, name in enumerate(names)}
    return _Inputs(
        models=models, criteria=list(Criterion.objects.filter(study=study).order_by("order", "id")),
        all_ratings=all_ratings, a=a, model_of=arrays.positions(a.model, [m.id for m in models]), prompt_of=prompt_of,
        rater_of=rater_of, n_prompts=int(len(prompt_ids)),
        categories=names, prompt_category=np.array([code_of[c] for c in of_prompt], dtype=np.int64),
    )


@dataclass(frozen=True)
class _CriterionRatings:
    """One criterion's ratings of the score table, coded (model in board order, prompt and rater dense)."""

    y: np.ndarray
    model: np.ndarray
    prompt: np.ndarray
    rater: np.ndarray
    generation: np.ndarray


def _criterion_ratings(*, inp: _Inputs, criterion: Criterion) -> _CriterionRatings:
    sel = inp.a.criterion == criterion.pk
    return _CriterionRatings(y=inp.a.score[sel], model=inp.model_of[sel], prompt=inp.prompt_of[sel],
                             rater=inp.rater_of[sel], generation=inp.a.generation[sel])


@dataclass(frozen=True)
class _CriterionResults:
    by_estimand: dict[str, EstimandResults]  # this criterion only
    agreement: Agreement


def _crossed_cells(res: crossed.CriterionResult) -> tuple[ScoreCell, ...]:
    """Per model: mean, normalized mean, their intervals (None where too few), n, prompts, raters, rank."""
    cells = []
    for i in range(res.mean.size):
        shown = bool(res.enough[i]) and res.raters_estimable
        cells.append(ScoreCell(
            mean=_finite(res.mean[i]), ci_low=_finite(res.mean_ci[0][i]), ci_high=_finite(res.mean_ci[1][i]),
            n=int(res.n_ratings[i]), n_prompts=int(res.n_prompts[i]), rank=int(res.rank[i]) if shown else None,
            norm_mean=_finite(res.normalized[i]), norm_ci_low=_finite(res.normalized_ci[0][i]),
            norm_ci_high=_finite(res.normalized_ci[1][i]),
            too_few=bool(res.n_ratings[i]) and not bool(res.enough[i]), n_raters=int(res.n_raters[i]),
            better_than=tuple(res.better_than[i]),
        ))
    return tuple(cells)


def _crossed_differences(res: crossed.CriterionResult) -> tuple[Difference, ...]:
    return tuple(Difference(
        a=a, b=b, difference=_finite(res.diff[k]), ci_low=_finite(res.diff_ci[0][k]),
        ci_high=_finite(res.diff_ci[1][k]), verdict=res.verdict[k], plain_difference=_finite(res.raw_diff[k]),
        plain_ci_low=_finite(res.raw_diff_ci[0][k]), plain_ci_high=_finite(res.raw_diff_ci[1][k]),
    ) for k, (a, b) in enumerate(res.pairs))


def _crossed_notes(res: crossed.CriterionResult) -> CriterionNotes:
    comps = res.components
    return CriterionNotes(
        raters_estimable=res.raters_estimable, df_min=_finite(res.df_min),
        prompts_eff=_finite(comps.prompts_eff) if comps else None,
        raters_eff=_finite(comps.raters_eff) if comps else None,
        components=dict(zip(crossed.FACTORS, (float(v) for v in comps.variance), strict=True)) if comps else {},
    )


def _criterion_results(*, cr: _CriterionRatings, key: str, n_models: int,
                       layouts: crossed.LayoutCache) -> _CriterionResults:
    """Cells, differences and notes under both estimands, and the agreement, of one criterion."""
    items, item_of = arrays.dense_codes(cr.generation)
    results = crossed.criterion_results(scores=cr.y, model=cr.model, prompt=cr.prompt, rater=cr.rater,
                                        n_models=n_models, cache=layouts)
    by_estimand = {e: EstimandResults(scores={key: _crossed_cells(res)}, differences={key: _crossed_differences(res)},
                                      notes={key: _crossed_notes(res)}) for e, res in results.items()}
    agreement = Agreement(
        alpha=_finite(stats.krippendorff_interval_alpha(scores=cr.y, rater=cr.rater, item=item_of))
        if cr.y.size else None,
        n_ratings=int(cr.y.size), n_images=int(items.size),
        n_multi=int((np.bincount(item_of) >= 2).sum()) if cr.y.size else 0,
    )
    return _CriterionResults(by_estimand=by_estimand, agreement=agreement)


def _category_cells(*, inp: _Inputs, cr: _CriterionRatings, estimand: str,
                    layouts: crossed.LayoutCache) -> dict[str, tuple[ScoreCell, ...]]:
    """One criterion's cells per prompt category (the chosen estimand)."""
    cats = inp.prompt_category[cr.prompt]
    out = {}
    for code in np.flatnonzero(np.bincount(cats, minlength=len(inp.categories))):
        cs = cats == code
        t = crossed.criterion_results(scores=cr.y[cs], model=cr.model[cs], prompt=cr.prompt[cs], rater=cr.rater[cs],
                                      n_models=inp.n_models, estimands=(estimand,), cache=layouts)[estimand]
        out[inp.categories[code]] = _crossed_cells(t)
    return out


def _side_by_side(*, numpy_jobs: dict[str, Callable[[], Any]], db_jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Results by name: ``numpy_jobs`` on up to RESULTS_COMPUTE_THREADS threads (numpy releases the GIL in
    its loops) while ``db_jobs`` run here: a job that queries the database stays on this thread, since
    another thread's connection would not see this one's transaction."""
    threads = min(settings.RESULTS_COMPUTE_THREADS, len(numpy_jobs))
    if threads <= 1:
        return {name: job() for name, job in {**numpy_jobs, **db_jobs}.items()}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="board") as pool:
        futures = {name: pool.submit(job) for name, job in numpy_jobs.items()}
        out = {name: job() for name, job in db_jobs.items()}
        out.update({name: f.result() for name, f in futures.items()})
    return out


def leaderboard_compute(*, study: Study) -> Board:
    """Everything the leaderboard page, its CSV and the ``leaderboard`` command show."""
    inp = _leaderboard_inputs(study=study)
    estimand = study.estimand if study.estimand in crossed.ESTIMANDS else crossed.ESTIMAND_RANDOM
    ratings_of = {c.key: _criterion_ratings(inp=inp, criterion=c) for c in inp.criteria}
    all_ratings, a = inp.all_ratings, inp.a

    def score_tables() -> dict[str, _CriterionResults]:
        layouts = crossed.LayoutCache()  # criteria rated in the same answers share one fit of their design
        return {k: _criterion_results(cr=cr, key=k, n_models=inp.n_models, layouts=layouts)
                for k, cr in ratings_of.items()}

    def category_tables() -> dict[str, dict[str, tuple[ScoreCell, ...]]]:
        layouts = crossed.LayoutCache()
        by_category: dict[str, dict[str, tuple[ScoreCell, ...]]] = {}
        for k, cr in ratings_of.items():
            for cat, cells in _category_cells(inp=inp, cr=cr, estimand=estimand, layouts=layouts).items():
                by_category.setdefault(cat, {})[k] = cells
        return dict(sorted(by_category.items()))

    scores = StudyScores(panelist=all_ratings.panelist, generation=all_ratings.generation,
                         criterion=all_ratings.criterion, score=all_ratings.score,
                         is_gold=all_ratings.is_gold, excluded=all_ratings.excluded)
    done = _side_by_side(
        numpy_jobs={"scores": score_tables, "categories": category_tables,
                    "pairs": lambda: _pair_results(a=a, criteria=inp.criteria, model_ids=inp.model_ids)},
        db_jobs={"raters": lambda: _rater_summary(
                     study=study, n_gold_answers=_gold_answers(all_ratings=all_ratings, criteria=inp.criteria),
                     scores=scores),
                 "ocr": lambda: ocr_results(study=study, model_ids=inp.model_ids, a=a, criteria=inp.criteria)},
    )
    per_criterion: dict[str, _CriterionResults] = done["scores"]
    by_estimand = {e: EstimandResults(
        scores={k: res.by_estimand[e].scores[k] for k, res in per_criterion.items()},
        differences={k: res.by_estimand[e].differences[k] for k, res in per_criterion.items()},
        notes={k: res.by_estimand[e].notes[k] for k, res in per_criterion.items()},
    ) for e in crossed.ESTIMANDS}
    chosen = by_estimand[estimand]
    return Board(
        study_id=study.pk, study_name=study.name, computed_at=timezone.now().isoformat(timespec="seconds"),
        criteria=tuple(CriterionRef(id=c.pk, key=c.key, name=c.name) for c in inp.criteria),
        models=tuple(inp.models),
        scores=chosen.scores,
        by_category=done["categories"],
        agreement={key: res.agreement for key, res in per_criterion.items()},
        pairs=done["pairs"],
        raters=done["raters"],
        ocr=done["ocr"],
        n_ratings_total=len(all_ratings), n_ratings_used=len(a),
        n_ratings_excluded=int(all_ratings.excluded.sum()), n_ratings_gold=int(all_ratings.is_gold.sum()),
        n_ratings_simulated=int(all_ratings.simulated.sum()), n_prompts=inp.n_prompts, n_resamples=N_RESAMPLES,
        estimand=estimand, differences=chosen.differences, notes=chosen.notes, by_estimand=by_estimand,
    )


TEXT_RENDERING_KEY = "text_rendering"


def _ocr_correlation(*, gen: np.ndarray, accuracy: np.ndarray, a: RatingArrays,
                     criteria: list[Criterion]) -> OcrCorrelation | None:
    """Spearman correlation over images of OCR accuracy and the panel's mean text-rendering score."""
    text_crit = [c.pk for c in criteria if c.key == TEXT_RENDERING_KEY]
    if not text_crit:
        return None
    sel = a.criterion == text_crit[0]
    if not sel.any():
        return None
    ids, inv = arrays.dense_codes(a.generation[sel])
    human = np.bincount(inv, weights=a.score[sel]) / np.bincount(inv)
    both = np.isin(gen, ids)
    if both.sum() < 3:
        return None
    h = human[np.searchsorted(ids, gen[both])]
    rho = spearmanr(h, accuracy[both]).statistic
    return OcrCorrelation(spearman=_finite(float(rho)), n_images=int(both.sum()))


def _within(cell: ScoreCell, *, low: float, high: float) -> ScoreCell:
    """An interval kept on its scale (a percentage never above 100: accuracy is bounded, its t interval is not)."""
    def clip(x: float | None) -> float | None:
        return None if x is None else min(max(x, low), high)

    return dataclasses.replace(cell, ci_low=clip(cell.ci_low), ci_high=clip(cell.ci_high))


def ocr_results(*, study: Study, model_ids: list[int], a: RatingArrays, criteria: list[Criterion]) -> OcrResults:
    """OCR text accuracy per model (100 × (1 − character error rate) of images whose prompt asks for text),
    with a 95% CI from the same bootstrap over prompts as the human scores (new prompts of this kind),
    the share of images with every expected word, and its Spearman correlation with the panel's
    text-rendering score over images (per study)."""
    rows = list(
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .exclude(prompt__expected_text="").order_by()
        .values_list("id", "model_id", "prompt_id", "ocr_cer", "ocr_all_words", "ocr_error")
    )
    checked = [r for r in rows if r[3] is not None and r[1] in model_ids]
    n_models = len(model_ids)
    n_images, n_checked, n_failed = len(rows), len(checked), sum(1 for r in rows if r[5])
    if not checked:
        return OcrResults(n_images=n_images, n_checked=n_checked, n_failed=n_failed, cells=(None,) * n_models,
                          all_words=(None,) * n_models)
    gen = np.array([r[0] for r in checked], dtype=np.int64)
    model = arrays.positions(np.array([r[1] for r in checked], dtype=np.int64), model_ids)
    _, prompt = arrays.dense_codes(np.array([r[2] for r in checked], dtype=np.int64))
    accuracy = 100.0 * (1.0 - np.array([r[3] for r in checked], dtype=np.float64))
    words = np.array([bool(r[4]) for r in checked], dtype=np.float64) * 100.0
    table = stats.model_means(scores=accuracy, model=model, prompt=prompt, n_models=n_models,
                              n_prompts=int(prompt.max()) + 1, n_resamples=N_RESAMPLES, seed=18)
    return OcrResults(
        n_images=n_images, n_checked=n_checked, n_failed=n_failed,
        cells=tuple(_within(_cell(table, i), low=0.0, high=100.0) for i in range(n_models)),
        all_words=tuple(_finite(words[model == i].mean()) if (model == i).any() else None for i in range(n_models)),
        correlation=_ocr_correlation(gen=gen, accuracy=accuracy, a=a, criteria=criteria),
    )


def _floats(values) -> tuple[float | None, ...]:
    return tuple(_finite(x) for x in values)


def _pair_results(*, a: RatingArrays, criteria: list[Criterion], model_ids: list[int]) -> Pairs:
    """Bradley–Terry per criterion and the left/right position bias, from the pair answers."""
    pr = _pairs_of(a)
    if pr["criterion"].size == 0:
        return Pairs()
    lm, rm = arrays.positions(pr["left_model"], model_ids), arrays.positions(pr["right_model"], model_ids)
    _, pp = arrays.dense_codes(pr["prompt"])
    by_criterion = {}
    for c in criteria:
        sel = pr["criterion"] == c.pk
        if not sel.any():
            continue
        outcome = stats.pair_outcomes(left_score=pr["left_score"][sel], right_score=pr["right_score"][sel])
        bt = stats.bradley_terry(left_model=lm[sel], right_model=rm[sel], outcome=outcome, prompt=pp[sel],
                                 n_models=len(model_ids), n_resamples=N_RESAMPLES, seed=criterion_seed(key=c.key))
        by_criterion[c.key] = PairResult(
            strength=_floats(bt.strength), ci_low=_floats(bt.ci_low), ci_high=_floats(bt.ci_high),
            rank=tuple(int(x) for x in bt.rank), n_pairs=tuple(int(x) for x in bt.n_pairs),
            win_rate=tuple(_floats(row) for row in bt.win_rate),
            games=tuple(tuple(int(x) for x in row) for row in bt.games),
            ties=int((outcome == 0.5).sum()), n=int(sel.sum()),
        )
    pb = stats.position_bias(left_score=pr["left_score"], right_score=pr["right_score"], prompt=pp,
                             n_resamples=N_RESAMPLES)
    return Pairs(
        n_pairs=int(pr["criterion"].size), by_criterion=by_criterion,
        position_bias=PositionBias(
            left_win_rate=_finite(pb.left_win_rate), ci_low=_finite(pb.ci_low), ci_high=_finite(pb.ci_high),
            mean_gap=_finite(pb.mean_gap), gap_ci_low=_finite(pb.gap_ci_low), gap_ci_high=_finite(pb.gap_ci_high),
            n_pairs=int(pb.n_pairs), p_value=_finite(pb.p_value),
        ),
    )


def _gold_answers(*, all_ratings: RatingArrays, criteria: list[Criterion]) -> int:
    """Prompt-accuracy scores given to attention checks (an image shown with another prompt)."""
    gold_criteria = [c.pk for c in criteria if c.key == PROMPT_ACCURACY_KEY]
    return int((all_ratings.is_gold & np.isin(all_ratings.criterion, gold_criteria)).sum())


def _rater_summary(*, study: Study, n_gold_answers: int, scores: StudyScores) -> RaterSummary:
    """Panel size, exclusions, gold pass rates and agreement with the others: ratings.quality's rows
    (the dashboard's numbers), summarised over the panelists who rated."""
    rows = [RaterRow(
        id=q.panelist.pk, pseudonym=q.panelist.pseudonym, excluded=q.panelist.excluded,
        simulated=q.panelist.is_simulated, n_ratings=q.n_ratings, gold_n=q.gold_n, gold_pass_rate=q.gold_pass_rate,
        flagged=q.flagged, consensus_r=q.agreement_r,
    ) for q in panelist_quality(study=study, scores=scores)]
    active = [r for r in rows if r.n_ratings]
    rs = [r.consensus_r for r in active if r.consensus_r is not None and not r.excluded]
    with_r = [(r.consensus_r, r.id, r) for r in active if r.consensus_r is not None]
    return RaterSummary(
        n_panelists=len(active), n_excluded=sum(r.excluded for r in active),
        n_simulated=sum(r.simulated for r in active), n_flagged=sum(r.flagged for r in active),
        median_consensus_r=float(np.median(rs)) if rs else None,
        lowest=tuple(r for _, _, r in sorted(with_r)[:5]),
        gold_n=n_gold_answers,
    )
