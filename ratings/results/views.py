"""Leaderboard page and CSV exports. Thin: check who asks, fetch the (cached) board, render."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from evalsite.access import PERM_EXPORT_RATINGS, PERM_VIEW_RESULTS, staff_permission_required, user_may

from ..models import Panelist, Rating, Study
from ..views import SESSION_PANELISTS  # {study_id: token} of panelists this browser rated as
from . import export_files, snapshots
from . import selectors as rs
from .board import Board
from .charts import chart_for
from .crossed import (
    ESTIMAND_PANEL,
    ESTIMAND_RANDOM,
    ESTIMAND_SENTENCE,
    MIN_PROMPTS,
    MIN_RATERS_RANDOM,
    MIN_RATINGS,
)
from .export import (
    RATINGS_CSV_HEADER,
    csv_stream,
    differences_rows,
    leaderboard_full_rows,
    leaderboard_rows,
    ratings_export_rows,
)
from .models import SnapshotReason

RowsOf = Callable[[Board, str | None], tuple[list[str], list[list]]]  # board, ?estimand= -> header, rows


def _csv_response(*, filename: str, header: list[str], rows, bom: bool) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_stream(header, rows, bom=bom), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _wants_bom(request: HttpRequest) -> bool:
    return request.GET.get("bom", "").lower() in {"1", "true", "yes"}


def _table_context(*, board: Board, for_staff: bool) -> dict:
    """Rows of the reference table (Model | speed | each criterion | VRAM) and the extra sections."""
    crits = board.criteria
    order = board.order()
    rows = [{"model": board.models[i], "cells": [board.scores[c.key][i] for c in crits],
             "ocr": board.ocr.cell(i), "ocr_all_words": board.ocr.all_words_of(i)} for i in order]
    categories = []
    for cat, per_crit in sorted(board.by_category.items()):
        cat_rows = []
        for i in order:
            cells = [per_crit[c.key][i] if c.key in per_crit else None for c in crits]
            if any(cell and cell.n for cell in cells):
                cat_rows.append({"model": board.models[i], "cells": cells})
        categories.append({"name": cat, "rows": cat_rows})
    names = [m.name for m in board.models]
    pairs = []
    for c in crits:
        p = board.pairs.by_criterion.get(c.key)
        if not p:
            continue
        strength = p.strength
        bt_order = sorted(range(len(names)), key=lambda i: -(s if (s := strength[i]) is not None else -99))
        pairs.append({
            "criterion": c, "n": p.n, "ties": p.ties,
            "rows": [{"name": names[i], "strength": p.strength[i], "ci_low": p.ci_low[i],
                      "ci_high": p.ci_high[i], "rank": p.rank[i], "n_pairs": p.n_pairs[i]} for i in bt_order],
            "matrix_names": [names[i] for i in bt_order],
            "matrix": [{"name": names[i], "cells": [
                {"rate": p.win_rate[i][j], "games": p.games[i][j], "self": i == j} for j in bt_order]}
                for i in bt_order],
        })
    return {
        "board": board, "criteria": crits, "rows": rows, "categories": categories, "pairs": pairs,
        "verdicts": _verdicts(board=board, order=order), **_estimand_context(board=board),
        "charts": [chart_for(board=board, criterion=c, order=order) for c in crits],
        "for_staff": for_staff,
    }


def _verdicts(*, board: Board, order: list[int]) -> list[dict]:
    """Per criterion: the 'better than' list and matrix (row model vs column model) from the differences."""
    names = [m.name for m in board.models]
    marks = {"a": "better", "b": "worse", "too few": "too few"}
    out = []
    for c in board.criteria:
        cells = board.scores[c.key]
        shown = [i for i in order if cells[i].mean is not None]
        matrix = []
        for i in shown:
            row: list[dict[str, object]] = []
            for j in shown:
                if i == j:
                    row.append({"self": True})
                    continue
                d = board.difference(c.key, i, j)
                row.append({"mark": marks.get(d.verdict, "unclear"), "difference": d.difference, "ci_low": d.ci_low,
                            "ci_high": d.ci_high, "col": names[j]})
            matrix.append({"name": names[i], "cells": row})
        better = [{"name": names[i], "rank": cells[i].rank, "too_few": cells[i].too_few,
                   "better_than": [names[j] for j in order if j in cells[i].better_than]} for i in shown]
        out.append({"criterion": c, "names": [names[i] for i in shown], "matrix": matrix, "better": better})
    return out


def _estimand_context(*, board: Board) -> dict:
    """The estimand sentence, the other estimand (the toggle), and why some intervals are missing or wider."""
    estimand = board.estimand if board.estimand in ESTIMAND_SENTENCE else ESTIMAND_RANDOM
    other = ESTIMAND_PANEL if estimand == ESTIMAND_RANDOM else ESTIMAND_RANDOM
    return {
        "estimand": estimand, "estimand_sentence": ESTIMAND_SENTENCE[estimand], "other_estimand": other,
        "other_estimand_sentence": ESTIMAND_SENTENCE[other],
        "raters_not_estimable": any(not n.raters_estimable for n in board.notes.values()),
        "few_prompts": 0 < board.n_prompts < 20,
        "min_ratings": MIN_RATINGS, "min_prompts": MIN_PROMPTS, "min_raters": MIN_RATERS_RANDOM,
    }


def _with_estimand(request: HttpRequest, board: Board) -> Board:
    """The board under the estimand the request asks for (?estimand=...), else the study's own."""
    return _estimand_of(board, request.GET.get("estimand") or None)


def _estimand_of(board: Board, estimand: str | None) -> Board:
    return board.for_estimand(estimand) if estimand else board


def _snapshot_for(request: HttpRequest, study: Study, *, for_staff: bool) -> snapshots.SnapshotView | None:
    """The latest snapshot (or a past one, ?snapshot=ID, for staff); None before the first one."""
    past = request.GET.get("snapshot", "") if for_staff else ""
    if past:
        return snapshots.board_snapshot_view_of(study=study, snapshot_id=_int_or_404(past))
    return snapshots.board_snapshot_for_page(study=study)


def _snapshot_missing() -> HttpResponse:
    response = HttpResponse("The first leaderboard of this study is being computed; try again in a few seconds.\n",
                            status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = "5"
    return response


def _render_board(request: HttpRequest, study: Study, *, for_staff: bool) -> HttpResponse:
    """The latest snapshot (or a past one, ?snapshot=ID, for staff), never a board computed here."""
    view = _snapshot_for(request, study, for_staff=for_staff)
    if view is None:
        response = render(request, "results/computing.html", {"study": study})
    else:
        ctx = _table_context(board=_with_estimand(request, view.board), for_staff=for_staff)
        ctx.update(study=study, snapshot=view, past=bool(request.GET.get("snapshot")) and for_staff,
                   history=snapshots.board_snapshot_list(study=study) if for_staff else [],
                   debounce=settings.RESULTS_SNAPSHOT_DEBOUNCE_SECONDS,
                   keep_recent=settings.RESULTS_SNAPSHOT_KEEP_RECENT,
                   ratings_in_background=export_files.ratings_export_in_background(
                       n_ratings=view.snapshot.ratings_count + view.new_ratings))
        response = render(request, "results/leaderboard.html", ctx)
    response["Cache-Control"] = "private, no-store"
    return response


def _int_or_404(value: str) -> int:
    if not value.isdigit():
        raise Http404("No such snapshot.")
    return int(value)


def _not_yet(request: HttpRequest, study: Study) -> HttpResponse:
    response = render(request, "results/not_public.html", {"study_name": study.name}, status=403)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def leaderboard(request: HttpRequest, study_id: int) -> HttpResponse:
    """Staff who may view results; a panelist of this study (remembered in the session) once results are public.

    Other staff get 403, as the admin answers them; anyone else is sent to the staff login.
    """
    study = get_object_or_404(Study.objects.select_related("sweep"), pk=study_id)
    if user_may(request.user, PERM_VIEW_RESULTS):
        return _render_board(request, study, for_staff=True)
    token = request.session.get(SESSION_PANELISTS, {}).get(str(study.pk))
    if token and Panelist.objects.filter(study=study, token=token, revoked_at__isnull=True).exists():
        if rs.results_visible_to_panelists(study=study):
            return _render_board(request, study, for_staff=False)
        return _not_yet(request, study)
    if request.user.is_active and request.user.is_staff:
        raise PermissionDenied
    return redirect_to_login(request.get_full_path(), reverse("admin:login"))


@require_GET
def panelist_results(request: HttpRequest, token: str) -> HttpResponse:
    """/r/<token>/results/: the leaderboard for a panelist, once the study is closed and public."""
    panelist = get_object_or_404(Panelist.objects.select_related("study__sweep"), token=token, revoked_at__isnull=True)
    if not rs.results_visible_to_panelists(study=panelist.study):
        return _not_yet(request, panelist.study)
    remembered = dict(request.session.get(SESSION_PANELISTS, {}))
    remembered[str(panelist.study_id)] = token
    request.session[SESSION_PANELISTS] = remembered
    return _render_board(request, panelist.study, for_staff=False)


@staff_permission_required(PERM_VIEW_RESULTS)
@require_POST
def leaderboard_refresh(request: HttpRequest, study_id: int) -> HttpResponse:
    """Staff: recompute the board now (a new snapshot even when nothing changed)."""
    study = get_object_or_404(Study, pk=study_id)
    snapshots.board_snapshot_request(study_id=study.pk, reason=SnapshotReason.FORCED, force=True)
    return redirect("results:leaderboard", study_id=study.pk)


@staff_permission_required(PERM_VIEW_RESULTS)
@require_POST
def leaderboard_snapshot_keep(request: HttpRequest, study_id: int, snapshot_id: int) -> HttpResponse:
    """Staff: keep a snapshot for good (the table a report cites), or let it be thinned again (kept=0)."""
    study = get_object_or_404(Study, pk=study_id)
    snapshots.board_snapshot_keep(study=study, snapshot_id=snapshot_id, kept=request.POST.get("kept", "1") != "0")
    return redirect(f"{reverse('results:leaderboard', args=[study.pk])}?snapshot={snapshot_id}")


def _snapshot_csv(request: HttpRequest, study_id: int, *, name: str, rows_of: RowsOf) -> HttpResponseBase:
    """A CSV of the latest snapshot's board (or ?snapshot=ID; ?estimand=...); 503 until the first one exists.

    ``rows_of(board, estimand)`` is one of export.py's writers (the ``leaderboard`` command uses the same)."""
    study = get_object_or_404(Study, pk=study_id)
    view = _snapshot_for(request, study, for_staff=True)
    if view is None:
        return _snapshot_missing()
    header, rows = rows_of(view.board, request.GET.get("estimand") or None)
    snap = view.snapshot
    # the file names its snapshot (a table passed around later can be traced back and reopened with ?snapshot=ID)
    response = _csv_response(filename=f"{name}-{study.pk}-{slugify(study.name)}-snapshot-{snap.pk}.csv",
                             header=header, rows=rows, bom=_wants_bom(request))
    response["X-Evalsite-Snapshot"] = str(snap.pk)
    response["X-Evalsite-Snapshot-Taken"] = snap.created_at.isoformat(timespec="seconds")
    response["X-Evalsite-Snapshot-Ratings"] = str(snap.ratings_count)
    response["X-Evalsite-New-Ratings"] = str(view.new_ratings)  # stored after the snapshot was taken
    return response


@staff_permission_required(PERM_VIEW_RESULTS)
@require_GET
def leaderboard_csv(request: HttpRequest, study_id: int) -> HttpResponseBase:
    """The per-model table (one row per model; as ``leaderboard --format csv``)."""
    return _snapshot_csv(request, study_id, name="leaderboard",
                         rows_of=lambda board, e: leaderboard_rows(board=_estimand_of(board, e)))


@staff_permission_required(PERM_VIEW_RESULTS)
@require_GET
def differences_csv(request: HttpRequest, study_id: int) -> HttpResponseBase:
    """Every pair of models per criterion: difference, 95% interval, verdict (as ``leaderboard --format differences``)."""
    return _snapshot_csv(request, study_id, name="differences",
                         rows_of=lambda board, e: differences_rows(board=_estimand_of(board, e)))


@staff_permission_required(PERM_VIEW_RESULTS)
@require_GET
def leaderboard_full_csv(request: HttpRequest, study_id: int) -> HttpResponseBase:
    """Everything the board holds in long form, a ``section`` column per row (as ``leaderboard --format full``)."""
    return _snapshot_csv(request, study_id, name="leaderboard-full",
                         rows_of=lambda board, e: leaderboard_full_rows(board=board, estimand=e))


@staff_permission_required(PERM_EXPORT_RATINGS)
@require_GET
def ratings_csv(request: HttpRequest, study_id: int) -> HttpResponseBase:
    """Every rating, one row per score, streamed (constant memory however many there are). Above
    RESULTS_EXPORT_BACKGROUND_ROWS ratings the file is written by a worker instead: to the exports page."""
    study = get_object_or_404(Study, pk=study_id)
    if export_files.ratings_export_in_background(n_ratings=Rating.objects.filter(study=study).count()):
        return redirect("results:exports", study_id=study.pk)
    return _csv_response(filename=_ratings_filename(study), header=RATINGS_CSV_HEADER,
                         rows=ratings_export_rows(study=study), bom=_wants_bom(request))


def _ratings_filename(study: Study) -> str:
    return f"ratings-{study.pk}-{slugify(study.name)}.csv"


@staff_permission_required(PERM_EXPORT_RATINGS)
@require_GET
def exports(request: HttpRequest, study_id: int) -> HttpResponse:
    """The study's background exports: how far the latest one is, its download link when ready, the button that
    asks for a new one (a POST to ``export_request``). Polled by htmx while one is unfinished; never writes."""
    study = get_object_or_404(Study, pk=study_id)
    latest = export_files.export_file_latest(study=study)
    n_ratings = Rating.objects.filter(study=study).count()
    context = {
        "study": study, "latest": latest, "history": export_files.export_file_list(study=study),
        "n_ratings": n_ratings, "threshold": settings.RESULTS_EXPORT_BACKGROUND_ROWS,
        "background": export_files.ratings_export_in_background(n_ratings=n_ratings),
        "keep": settings.RESULTS_EXPORT_KEEP,
        "unfinished": latest is not None and latest.status in export_files.UNFINISHED,
        "new_since": (Rating.objects.filter(study=study, id__gt=latest.last_rating_id).count()
                      if latest is not None else 0),
    }
    template = "results/exports.html#status" if getattr(request, "htmx", False) else "results/exports.html"
    response = render(request, template, context)
    response["Cache-Control"] = "private, no-store"
    return response


@staff_permission_required(PERM_EXPORT_RATINGS)
@require_POST
def export_request(request: HttpRequest, study_id: int) -> HttpResponse:
    """Ask a worker for the study's ratings.csv (one unfinished export at a time); back to the exports page."""
    study = get_object_or_404(Study, pk=study_id)
    user = request.user if request.user.is_authenticated else None
    export_files.export_file_request(study=study, requested_by=user, bom=_wants_bom_post(request))
    return redirect("results:exports", study_id=study.pk)


def _wants_bom_post(request: HttpRequest) -> bool:
    return request.POST.get("bom", "").lower() in {"1", "true", "yes", "on"}


@staff_permission_required(PERM_EXPORT_RATINGS)
@require_GET
def export_download(request: HttpRequest, study_id: int, export_id: int) -> FileResponse:
    """A finished export's file, through this view only (the media folder is never served)."""
    study = get_object_or_404(Study, pk=study_id)
    export = export_files.export_file_ready(study=study, export_id=export_id)
    if export is None:
        raise Http404("No such finished export of this study.")
    response = FileResponse(export.file.open("rb"), as_attachment=True, filename=_ratings_filename(study),
                            content_type="text/csv; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response
