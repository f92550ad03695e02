"""Celery tasks of results (default queue): thin wrappers over the snapshot refresh and the background export
(idempotent, late-acked)."""

from __future__ import annotations

from celery import shared_task

from ..models import Study
from . import export_files, snapshots


@shared_task(name=snapshots.SNAPSHOT_TASK, soft_time_limit=600, time_limit=660)
def board_snapshot_refresh_task(study_id: int, reason: str = "ratings", force: bool = False) -> None:
    study = Study.objects.filter(pk=study_id).first()
    if study is not None:  # a deleted study needs no board
        snapshots.board_snapshot_refresh(study=study, reason=reason, force=force)


@shared_task(name=export_files.EXPORT_TASK, acks_late=True, soft_time_limit=export_files.EXPORT_TIME_LIMIT - 60,
             time_limit=export_files.EXPORT_TIME_LIMIT)
def export_file_write_task(*, export_id: int) -> str:
    """Write a queued export into the media storage (only a queued row is written: a redelivery does nothing)."""
    export = export_files.export_file_write(export_id=export_id)
    return export.status if export is not None else "missing"
