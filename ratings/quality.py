"""Rater quality: the one implementation, shown on the staff dashboard and in the leaderboard's rater rows.

Per panelist: items answered and skipped, attention checks (gold: an image shown with a prompt it
was not made for; failed when its prompt-accuracy score is at least GOLD_FAIL_SCORE), median seconds
per item, and agreement with the panel: each non-gold rating against the mean of the *included*
panelists' other ratings of the same image and criterion (mean absolute difference, and Pearson r
from three such pairs up).

Excluded panelists: they never enter anyone's reference (excluding a careless rater must not
change how the others are judged), but they still get their own numbers, measured against the
included panel, so staff can see why they were excluded or whether to include them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import Aggregate, FloatField

from .arrays import dense_codes, positions
from .models import Assignment, AssignmentStatus, Criterion, Panelist, Rating, Study
from .selectors import GOLD_FAIL_SCORE, GOLD_FLAG_BELOW, PROMPT_ACCURACY_KEY, panelist_counts

MIN_PAIRS_FOR_R = 3


@dataclass(frozen=True)
class Agreement:
    """Per rater: pairs (own score, reference mean), mean absolute difference, Pearson r (nan if undefined)."""

    n: np.ndarray
    mad: np.ndarray
    r: np.ndarray


def agreement_with_panel(*, scores, rater: np.ndarray, cell: np.ndarray, included: np.ndarray,
                         n_raters: int) -> Agreement:
    """Each score against the mean of the included raters' other scores of the same cell (pure numpy).

    ``rater`` is 0..n_raters-1, ``cell`` any integer code of (image, criterion), ``included`` a bool
    per score: whether its rater counts in the references.
    """
    y = np.asarray(scores, dtype=np.float64)
    r = np.asarray(rater, dtype=np.int64)
    inc = np.asarray(included, dtype=bool).astype(np.float64)
    nan = np.full(n_raters, np.nan)
    if y.size == 0:
        return Agreement(n=np.zeros(n_raters, dtype=np.int64), mad=nan, r=nan.copy())
    _, c = dense_codes(np.asarray(cell, dtype=np.int64))
    total = np.bincount(c, weights=y * inc)
    count = np.bincount(c, weights=inc)
    others = count[c] - inc
    ok = others > 0
    ref = (total[c] - y * inc)[ok] / others[ok]
    yy, rr = y[ok], r[ok]
    n = np.bincount(rr, minlength=n_raters).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mad = np.bincount(rr, weights=np.abs(yy - ref), minlength=n_raters) / n
        my = np.bincount(rr, weights=yy, minlength=n_raters) / n
        ml = np.bincount(rr, weights=ref, minlength=n_raters) / n
        cov = np.bincount(rr, weights=yy * ref, minlength=n_raters) / n - my * ml
        vy = np.bincount(rr, weights=yy * yy, minlength=n_raters) / n - my * my
        vl = np.bincount(rr, weights=ref * ref, minlength=n_raters) / n - ml * ml
        corr = np.where((n >= MIN_PAIRS_FOR_R) & (vy > 1e-12) & (vl > 1e-12), cov / np.sqrt(vy * vl), np.nan)
    return Agreement(n=n.astype(np.int64), mad=np.where(n > 0, mad, np.nan), r=corr)


def group_medians(*, keys: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """The median of ``values`` per key 0..n_groups-1 (nan for a key without values), vectorised."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order].astype(np.float64)
    n = np.bincount(k, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    has = n > 0
    lo, hi = start[has] + (n[has] - 1) // 2, start[has] + n[has] // 2
    out[has] = (v[lo] + v[hi]) / 2.0
    return out


@dataclass(frozen=True)
class PanelistQuality:
    panelist: Panelist
    n_ratings: int  # every score they gave (gold included)
    done: int  # items answered (gold included: the panelist cannot tell)
    skipped: int
    gold_n: int
    gold_failed: int
    gold_pass_rate: float | None
    flagged: bool
    median_seconds: float | None
    agreement_n: int
    agreement_mad: float | None
    agreement_r: float | None

    @property
    def gold_passed(self) -> int:
        return self.gold_n - self.gold_failed


def _number(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True)
class StudyScores:
    """Every score of a study as parallel arrays (the leaderboard has them already: it passes them in
    rather than have the same million rows fetched twice)."""

    panelist: np.ndarray
    generation: np.ndarray
    criterion: np.ndarray
    score: np.ndarray
    is_gold: np.ndarray
    excluded: np.ndarray

    @classmethod
    def fetch(cls, *, study: Study) -> StudyScores:
        rows = list(Rating.objects.filter(study=study).order_by().values_list(
            "panelist_id", "generation_id", "criterion_id", "score", "assignment__is_gold", "panelist__excluded"))
        data = np.array(rows, dtype=np.int64).reshape(-1, 6)
        return cls(panelist=data[:, 0], generation=data[:, 1], criterion=data[:, 2], score=data[:, 3],
                   is_gold=data[:, 4].astype(bool), excluded=data[:, 5].astype(bool))


def _cells(generation: np.ndarray, criterion: np.ndarray) -> np.ndarray:
    """One dense code per (image, criterion)."""
    _, g = dense_codes(generation)
    crit_ids, c = dense_codes(criterion)
    return g * max(crit_ids.size, 1) + c


class _Median(Aggregate):
    """PostgreSQL's median (the mean of the two middle values for an even count, as group_medians)."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def median_elapsed_ms(*, study: Study, panelist_ids: np.ndarray) -> np.ndarray:
    """Median milliseconds per answered item of each panelist (nan without any): one grouped query on
    PostgreSQL (2,000 rows back, not every answer), else every answer's time through group_medians."""
    answers = Assignment.objects.filter(study=study, status=AssignmentStatus.DONE, elapsed_ms__isnull=False).order_by()
    if connection.vendor == "postgresql":
        rows = list(answers.values("panelist_id").annotate(median=_Median("elapsed_ms")).values_list("panelist_id", "median"))
        out = np.full(panelist_ids.size, np.nan)
        if rows:
            pos = positions(np.array([r[0] for r in rows], dtype=np.int64), panelist_ids)
            out[pos] = [r[1] for r in rows]
        return out
    timed = np.array(list(answers.values_list("panelist_id", "elapsed_ms")), dtype=np.int64).reshape(-1, 2)
    return group_medians(keys=positions(timed[:, 0], panelist_ids), values=timed[:, 1], n_groups=panelist_ids.size)


def panelist_quality(*, study: Study, scores: StudyScores | None = None) -> list[PanelistQuality]:
    """Every panelist of the study, oldest first (four queries, whatever the panel size; three when
    the caller passes the study's ``scores``)."""
    panelists = list(Panelist.objects.filter(study=study).order_by("created_at", "id"))
    counts = panelist_counts(study=study)  # the numbers each panelist is shown
    gold_criteria = set(Criterion.objects.filter(study=study, key=PROMPT_ACCURACY_KEY).values_list("id", flat=True))
    sc = scores if scores is not None else StudyScores.fetch(study=study)
    ids = np.array([p.pk for p in panelists], dtype=np.int64)
    rater = positions(sc.panelist, ids)
    n_ratings = np.bincount(rater, minlength=len(panelists))
    is_gold_check = sc.is_gold & np.isin(sc.criterion, list(gold_criteria))
    gold_n = np.bincount(rater[is_gold_check], minlength=len(panelists))
    gold_failed = np.bincount(rater[is_gold_check & (sc.score >= GOLD_FAIL_SCORE)], minlength=len(panelists))
    scored = ~sc.is_gold
    agree = agreement_with_panel(
        scores=sc.score[scored], rater=rater[scored], cell=_cells(sc.generation[scored], sc.criterion[scored]),
        included=~sc.excluded[scored], n_raters=len(panelists),
    )
    median_ms = median_elapsed_ms(study=study, panelist_ids=ids)
    out = []
    for i, p in enumerate(panelists):
        c = counts.get(p.pk, {})
        n_gold = int(gold_n[i])
        rate = (n_gold - int(gold_failed[i])) / n_gold if n_gold else None
        out.append(PanelistQuality(
            panelist=p, n_ratings=int(n_ratings[i]), done=c.get("answered", 0), skipped=c.get("skipped", 0),
            gold_n=n_gold, gold_failed=int(gold_failed[i]), gold_pass_rate=rate,
            flagged=rate is not None and rate < GOLD_FLAG_BELOW,
            median_seconds=None if math.isnan(median_ms[i]) else float(median_ms[i]) / 1000.0,
            agreement_n=int(agree.n[i]), agreement_mad=_number(agree.mad[i]), agreement_r=_number(agree.r[i]),
        ))
    return out
