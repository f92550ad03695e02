"""Celery tasks of the ratings app: thin, id-only, idempotent (they run on the default queue)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import services


@shared_task(name="ratings.tasks.studies_items_sync", acks_late=True)
def studies_items_sync(*, sweep_id: int) -> int:
    """Items for a sweep's new images in its studies (idempotent: existing items are kept)."""
    return services.studies_items_sync_for_sweep(sweep_id=sweep_id)


def sweep_images_added_received(sender: Any, *, sweep_id: int, **kwargs: Any) -> None:
    """generation.signals.sweep_images_added: sync the studies' items once the images are committed."""
    studies_items_sync.delay_on_commit(sweep_id=sweep_id)
