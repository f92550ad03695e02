"""CSV exports: the raw ratings (one row per score, streamed with constant memory; RFC 4180, UTF-8,
optional BOM), the per-model leaderboard table of a ``Board``, its pairwise differences, and the whole
board in long form (``leaderboard_full_rows``: leaderboard-full.csv).

Kept apart from the statistics on purpose: exporting needs only Django and the csv module,
so an export process does not load numpy/scipy (a board arrives already computed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from evalsite.csv_safe import csv_writer

from ..models import AssignmentKind, Rating, Side, Study
from ..services import StudySetupError
from .board import Board

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

RATINGS_CSV_HEADER = [
    "study", "rating_id", "prompt_id", "prompt", "category", "model", "model_slug", "seed", "criterion", "score",
    "mode", "side", "pair_partner_model", "panelist", "gold", "excluded", "simulated", "timestamp", "elapsed_ms",
    "pair",  # the answer's id on both sides of a pair (empty for single images): import_ratings reads it back
]


def ratings_export_rows(*, study: Study, chunk_size: int = 2000) -> Iterator[list]:
    """Raw ratings, one row per score, streamed from a server-side cursor (constant memory)."""
    qs = (
        Rating.objects.filter(study=study)
        .order_by("id")
        .values_list(
            "id", "generation__prompt_id", "generation__prompt__text", "generation__prompt__category",
            "generation__model__name", "generation__model__slug", "generation__seed", "criterion__key", "score",
            "assignment__kind", "side", "assignment__left__model__name", "assignment__right__model__name",
            "panelist__pseudonym", "assignment__is_gold", "panelist__excluded", "is_simulated", "created_at",
            "assignment__elapsed_ms", "assignment_id",
        )
    )
    for (rid, pid, text, cat, model, slug, seed, crit, score, kind, side, left_model, right_model, pseudonym,
         gold, excluded, simulated, created, elapsed, assignment_id) in qs.iterator(chunk_size=chunk_size):
        partner = right_model if side == Side.LEFT else left_model if side == Side.RIGHT else ""
        yield [
            study.pk, rid, pid, text, cat, model, slug, seed, crit, score,
            "pair" if kind == AssignmentKind.PAIR else "single", side, partner or "", pseudonym,
            int(bool(gold)), int(bool(excluded)), int(bool(simulated)),
            created.isoformat(timespec="seconds") if created else "", "" if elapsed is None else elapsed,
            assignment_id if kind == AssignmentKind.PAIR else "",
        ]


def leaderboard_rows(*, board: Board) -> tuple[list[str], list[list]]:
    """The per-model table: speed, VRAM and, per criterion, mean, CI low, CI high, n (and rank); then OCR, the
    smallest card the model renders on with its setting ("not profiled" without a profile) and $ per 1,000 images."""
    header = ["model", "model_slug", "speed_median_s", "speed_mean_s", "n_images", "gpu", "mode",
              "peak_vram_allocated_gib", "peak_vram_reserved_gib"]
    for c in board.criteria:
        k = c.key
        header += [f"{k}_mean", f"{k}_ci_low", f"{k}_ci_high", f"{k}_n", f"{k}_n_prompts", f"{k}_rank",
                   f"{k}_normalized_mean", f"{k}_normalized_ci_low", f"{k}_normalized_ci_high"]
    header += ["ocr_text_accuracy_pct", "ocr_ci_low", "ocr_ci_high", "ocr_n_images", "ocr_all_words_pct"]
    header += ["min_vram_card_gb", "min_vram_setting", "usd_per_1000_images"]  # issue 14, after every older column
    rows = []
    for i in board.order():
        m = board.models[i]
        row = [m.name, m.slug, _r(m.speed_median, 3), _r(m.speed_mean, 3), m.n_images, m.gpu,
               m.mode, _r(m.vram_allocated_gib, 2), _r(m.vram_reserved_gib, 2)]
        for c in board.criteria:
            cell = board.scores[c.key][i]
            row += [_r(cell.mean, 3), _r(cell.ci_low, 3), _r(cell.ci_high, 3), cell.n, cell.n_prompts,
                    "" if cell.rank is None else cell.rank, _r(cell.norm_mean, 3), _r(cell.norm_ci_low, 3),
                    _r(cell.norm_ci_high, 3)]
        ocr = board.ocr.cell(i)
        if ocr is None:
            row += ["", "", "", 0]
        else:
            row += [_r(ocr.mean, 2), _r(ocr.ci_low, 2), _r(ocr.ci_high, 2), ocr.n]
        row.append(_r(board.ocr.all_words_of(i), 1))
        row += [_r(m.vram_fit.min_card_gb if m.vram_fit else None, 1), m.min_vram_setting(),
                _r(m.usd_per_1000_images, 4)]
        rows.append(row)
    return header, rows


DIFFERENCES_HEADER = ["criterion", "model_a", "model_b", "difference", "ci_low", "ci_high", "verdict",
                      "plain_difference", "estimand"]


def differences_rows(*, board: Board) -> tuple[list[str], list[list]]:
    """One row per pair of models and criterion: the rater-adjusted difference a − b on the 1–10 scale, its 95%
    interval and the verdict (a, b or unclear; empty interval and "unclear" where there are too few ratings),
    then the plain difference of means and the estimand. Pairs follow the board's order (model_a first)."""
    order = board.order()
    rows = []
    for c in board.criteria:
        for x, i in enumerate(order):
            for j in order[x + 1:]:
                d = board.difference(c.key, i, j)
                rows.append([c.key, board.models[i].name, board.models[j].name, _r(d.difference, 3),
                             _r(d.ci_low, 3), _r(d.ci_high, 3), d.verdict if d.verdict in ("a", "b") else "unclear",
                             _r(d.plain_difference, 3), board.estimand])
    return DIFFERENCES_HEADER, rows


FULL_HEADER = [
    "section", "estimand", "criterion", "category", "model", "model_slug", "model_b", "model_b_slug",
    "mean", "strength", "difference", "ci_low", "ci_high", "normalized_mean", "normalized_ci_low",
    "normalized_ci_high", "rank", "n", "n_prompts", "n_raters", "too_few", "win_rate", "games",
    "plain_difference", "plain_ci_low", "plain_ci_high", "verdict", "alpha",
]
FULL_SECTIONS = ("overall", "category", "pairs", "win_rates", "differences", "agreement", "ocr")


def leaderboard_full_rows(*, board: Board, estimand: str | None = None) -> tuple[list[str], list[list]]:
    """Everything the board holds, in long ("tidy") form: one header, one row per observation, a ``section``
    column saying what the row is (the columns a section does not use are empty):

    - ``overall``: per criterion and model, the mean with its 95% interval (``ci_low``/``ci_high``), the
      rater-normalized mean with its interval, rank, n, prompts, raters, ``too_few``;
    - ``category``: the same per prompt category, criterion and model (cells with ratings only);
    - ``pairs``: Bradley–Terry strength per criterion and model, its interval, rank, n = the model's pairs;
    - ``win_rates``: per criterion, ``model`` against ``model_b``: the share of their pairs ``model`` won, games;
    - ``differences``: per criterion and pair, ``model`` − ``model_b`` (rater-adjusted) with its interval, the
      verdict (``a`` = ``model`` credibly better, ``b`` = ``model_b``, ``unclear``, ``too few``) and the plain
      difference of means with its interval;
    - ``agreement``: Krippendorff's alpha per criterion (n = ratings);
    - ``ocr``: automatic text accuracy per model in % (``mean``, interval, n = images).

    ``estimand`` picks the board's scores and differences (default: the study's own); each row names the
    estimand its interval is about (category cells are computed under the study's estimand only). Models
    follow the board's order, as in ``leaderboard.csv``; numbers are rounded as there.
    """
    shown = board.for_estimand(estimand) if estimand else board
    col = {name: i for i, name in enumerate(FULL_HEADER)}
    order = shown.order()
    models = shown.models
    rows: list[list] = []

    def row(section: str, **values) -> None:
        out: list = [""] * len(FULL_HEADER)
        out[0] = section
        for name, value in values.items():
            out[col[name]] = "" if value is None else value
        rows.append(out)

    def who(i: int, j: int | None = None) -> dict:
        names = {"model": models[i].name, "model_slug": models[i].slug}
        if j is not None:
            names.update(model_b=models[j].name, model_b_slug=models[j].slug)
        return names

    def score(cell) -> dict:
        return {"mean": _r(cell.mean, 3), "ci_low": _r(cell.ci_low, 3), "ci_high": _r(cell.ci_high, 3),
                "normalized_mean": _r(cell.norm_mean, 3), "normalized_ci_low": _r(cell.norm_ci_low, 3),
                "normalized_ci_high": _r(cell.norm_ci_high, 3), "rank": cell.rank, "n": cell.n,
                "n_prompts": cell.n_prompts, "n_raters": cell.n_raters, "too_few": int(cell.too_few)}

    for c in shown.criteria:
        for i in order:
            row("overall", estimand=shown.estimand, criterion=c.key, **who(i), **score(shown.scores[c.key][i]))
    for cat, per_criterion in sorted(shown.by_category.items()):
        for c in shown.criteria:
            cells = per_criterion.get(c.key, ())
            for i in order:
                if i < len(cells) and cells[i].n:
                    row("category", estimand=board.estimand, criterion=c.key, category=cat, **who(i),
                        **score(cells[i]))
    for c in shown.criteria:
        p = shown.pairs.by_criterion.get(c.key)
        if p is None:
            continue
        for i in order:
            row("pairs", criterion=c.key, **who(i), strength=_r(p.strength[i], 3), ci_low=_r(p.ci_low[i], 3),
                ci_high=_r(p.ci_high[i], 3), rank=p.rank[i], n=p.n_pairs[i])
        for i in order:
            for j in order:
                if i != j and p.games[i][j]:
                    row("win_rates", criterion=c.key, **who(i, j), win_rate=_r(p.win_rate[i][j], 3),
                        games=p.games[i][j])
    for c in shown.criteria:
        for x, i in enumerate(order):
            for j in order[x + 1:]:
                d = shown.difference(c.key, i, j)
                row("differences", estimand=shown.estimand, criterion=c.key, **who(i, j),
                    difference=_r(d.difference, 3), ci_low=_r(d.ci_low, 3), ci_high=_r(d.ci_high, 3),
                    verdict=d.verdict, plain_difference=_r(d.plain_difference, 3),
                    plain_ci_low=_r(d.plain_ci_low, 3), plain_ci_high=_r(d.plain_ci_high, 3))
    for c in shown.criteria:
        agreement = shown.agreement.get(c.key)
        if agreement is not None:
            row("agreement", criterion=c.key, alpha=_r(agreement.alpha, 3), n=agreement.n_ratings)
    for i in order:
        ocr = shown.ocr.cell(i)
        if ocr is not None and ocr.n:
            row("ocr", **who(i), mean=_r(ocr.mean, 2), ci_low=_r(ocr.ci_low, 2), ci_high=_r(ocr.ci_high, 2),
                n=ocr.n)
    return FULL_HEADER, rows


def _r(x: float | None, digits: int) -> float | str:
    # + 0.0 turns a rounded -0.0 into 0.0: the same value must print the same whatever its float sign
    return "" if x is None else round(x, digits) + 0.0


class _Echo:
    """A write-only file for csv.writer: each row comes back as a string to stream."""

    def write(self, value: str) -> str:
        return value


def csv_stream(header: list[str], rows: Iterable[list], *, bom: bool = False) -> Iterator[str]:
    """CSV text row by row (RFC 4180 quoting, CRLF line ends, formula cells neutralised), for a StreamingHttpResponse."""
    writer = csv_writer(_Echo())
    if bom:
        yield "\ufeff"
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def ratings_csv_write(*, study: Study, out: SupportsWrite[str], bom: bool = False,
                      progress: Callable[[int], None] | None = None, every: int = 50_000) -> int:
    """Write the raw ratings CSV to an open text file (anything with ``write``); returns the number of data rows.

    ``progress(rows so far)`` is called every ``every`` rows (a background export says how far it is)."""
    if bom:
        out.write("\ufeff")
    writer = csv_writer(out)
    writer.writerow(RATINGS_CSV_HEADER)
    n = 0
    for row in ratings_export_rows(study=study):
        writer.writerow(row)
        n += 1
        if progress is not None and n % every == 0:
            progress(n)
    return n


def ratings_csv_export(*, study: Study, path: Path, bom: bool = False) -> int:
    """Export to a file, written next to the target and renamed, so a failed export leaves nothing half-written."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise StudySetupError(f"{path.parent} does not exist.")
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            n = ratings_csv_write(study=study, out=fh, bom=bom)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return n
