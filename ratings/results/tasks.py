"""Celery task of results: a thin wrapper over the snapshot refresh (idempotent, late-acked)."""

from __future__ import annotations

from celery import shared_task

from ..models import Study
from . import snapshots


@shared_task(name=snapshots.SNAPSHOT_TASK, soft_time_limit=600, time_limit=660)
def board_snapshot_refresh_task(study_id: int, reason: str = "ratings", force: bool = False) -> None:
    study = Study.objects.filter(pk=study_id).first()
    if study is not None:  # a deleted study needs no board
        snapshots.board_snapshot_refresh(study=study, reason=reason, force=force)
