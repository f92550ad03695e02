"""Background exports: the raw ratings of a large study written by a worker, offered for download when ready.

Up to ``RESULTS_EXPORT_BACKGROUND_ROWS`` ratings, ``ratings.csv`` streams in the request (constant memory).
Above it, a web worker would be held for minutes, so staff ask for the file (a POST) and a task on the
``default`` queue writes it into the media storage under ``exports/`` (the storage's private modes: 0600 files
in 0700 folders on a file system, a private object on S3); the page polls its state and links the download
view, which checks the same permission as ``ratings.csv``. The task is idempotent (late acks): only a queued
row, or a running one whose worker died long ago, is claimed, so a redelivery writes nothing twice.

Files do not pile up: once an export is written, the files of all but the newest ``RESULTS_EXPORT_KEEP``
finished exports of that study and kind are deleted (their rows stay as history, marked removed), and
deleting an export's row (the admin) deletes its file.
"""

from __future__ import annotations

import io
import logging
import secrets
import tempfile
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from ..models import ExportFile, ExportKind, ExportStatus, Rating, Study
from .export import ratings_csv_write

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

EXPORT_TASK = "results.export_file_write"
EXPORT_DIR = "exports"
EXPORT_TIME_LIMIT = 3 * 3600  # seconds: the task's hard limit; a row running longer lost its worker
UNFINISHED = (ExportStatus.QUEUED, ExportStatus.RUNNING)


# --------------------------------------------------------------------------- reads


def ratings_export_in_background(*, n_ratings: int) -> bool:
    """Whether a ratings export of this many rows is written by a worker instead of streamed."""
    return n_ratings > settings.RESULTS_EXPORT_BACKGROUND_ROWS


def export_file_latest(*, study: Study, kind: str = ExportKind.RATINGS) -> ExportFile | None:
    return ExportFile.objects.filter(study=study, kind=kind).order_by("-created_at", "-id").first()


def export_file_list(*, study: Study, limit: int = 10) -> list[ExportFile]:
    return list(ExportFile.objects.filter(study=study).select_related("requested_by")
                .order_by("-created_at", "-id")[:limit])


def export_file_ready(*, study: Study, export_id: int) -> ExportFile | None:
    """A finished export of this study whose file is still there (None otherwise: the view answers 404)."""
    export = ExportFile.objects.filter(study=study, pk=export_id, status=ExportStatus.DONE).first()
    if export is None or not export.file.name or not export.file.storage.exists(export.file.name):
        return None
    return export


# --------------------------------------------------------------------------- writes


def export_file_request(*, study: Study, requested_by: User | None = None,
                        kind: str = ExportKind.RATINGS, bom: bool = False) -> ExportFile:
    """Ask for an export: a queued row, the task sent after commit. One unfinished export per study and kind:
    asking again while one is queued or running returns that one."""
    if kind not in ExportKind.values:
        raise ValueError(f"unknown export kind {kind!r}")
    with transaction.atomic():
        Study.objects.select_for_update().filter(pk=study.pk).first()  # two clicks at once make one row
        pending = ExportFile.objects.filter(study=study, kind=kind, status__in=UNFINISHED).first()
        if pending is not None:
            return pending
        agg = Rating.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
        export = ExportFile.objects.create(
            study=study, kind=kind, bom=bom, rows_expected=agg["n"] or 0, last_rating_id=agg["last"] or 0,
            requested_by=requested_by,
        )
        pk = export.pk
        transaction.on_commit(lambda: _enqueue(export_id=pk))
    log.info("export %s (%s) of study %s queued: %d rows", pk, kind, study.pk, export.rows_expected)
    return export


def _enqueue(*, export_id: int) -> None:
    from .tasks import export_file_write_task  # the task module is a thin wrapper that imports this one

    export_file_write_task.apply_async(kwargs={"export_id": export_id})  # default queue


def _claim(*, export_id: int) -> bool:
    """Queued (or running past the task's time limit: its worker is gone) -> running, for this run only."""
    lost = timezone.now() - timedelta(seconds=EXPORT_TIME_LIMIT + 60)
    return bool(ExportFile.objects.filter(
        Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, started_at__lt=lost), pk=export_id,
    ).update(status=ExportStatus.RUNNING, started_at=timezone.now(), rows=0, error=""))


def export_file_write(*, export_id: int) -> ExportFile | None:
    """Write a queued export into the media storage (what the task runs). Idempotent: a row that is not
    queued is left as it is. A failure is recorded on the row with its message, and nothing is kept."""
    export = ExportFile.objects.select_related("study").filter(pk=export_id).first()
    if export is None or not _claim(export_id=export_id):
        return export
    study = export.study

    def progress(rows: int) -> None:
        ExportFile.objects.filter(pk=export_id).update(rows=rows)

    saved = ""
    try:
        with tempfile.TemporaryFile("w+b") as raw:  # 0600 in the system temp folder, gone when closed
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            rows = ratings_csv_write(study=study, out=text, bom=export.bom, progress=progress)
            text.flush()
            text.detach()  # the bytes stay in ``raw``; closing the wrapper would close it
            size = raw.tell()
            raw.seek(0)
            # a random part: the name says nothing guessable, and a retried export never overwrites a file
            name = f"{EXPORT_DIR}/study-{study.pk}/{export.kind}-{export.pk}-{secrets.token_hex(8)}.csv"
            saved = default_storage.save(name, File(raw, name=name))
        ExportFile.objects.filter(pk=export_id).update(status=ExportStatus.DONE, rows=rows, file=saved,
                                                       size_bytes=size, finished_at=timezone.now())
        log.info("export %s of study %s written: %d rows, %d bytes (%s)", export_id, study.pk, rows, size, saved)
    except Exception as exc:  # noqa: BLE001 - the row says why; the worker lives on
        log.exception("export %s of study %s failed", export_id, study.pk)
        export_file_delete_stored(name=saved)
        ExportFile.objects.filter(pk=export_id).update(status=ExportStatus.FAILED, finished_at=timezone.now(),
                                                       error=f"{type(exc).__name__}: {exc}"[:4000])
    else:  # outside the try: a failure to delete an older file must not fail (and delete) the new one
        export_files_prune(study=study, kind=export.kind)
    return ExportFile.objects.get(pk=export_id)


def export_files_prune(*, study: Study, kind: str = ExportKind.RATINGS, keep: int | None = None) -> int:
    """Delete the files of this study's finished exports of ``kind`` beyond the newest ``keep``
    (RESULTS_EXPORT_KEEP; 0 keeps all). Their rows stay, with no file: the page lists them as removed.
    Returns how many files were deleted."""
    keep = settings.RESULTS_EXPORT_KEEP if keep is None else keep
    if keep <= 0:
        return 0
    older = list(ExportFile.objects.filter(study=study, kind=kind, status=ExportStatus.DONE).exclude(file="")
                 .order_by("-finished_at", "-id").values_list("pk", "file")[keep:])
    for _, name in older:
        export_file_delete_stored(name=name)
    ExportFile.objects.filter(pk__in=[pk for pk, _ in older]).update(file="")
    if older:
        log.info("exports of study %s: %d older %s file(s) deleted, %d kept", study.pk, len(older), kind, keep)
    return len(older)


def export_file_delete_stored(*, name: str | None) -> None:
    """Delete one export's file from the media storage (nothing if it is already gone)."""
    if name and default_storage.exists(name):
        default_storage.delete(name)
