"""Results listens to ratings and generation: a change of what a study's board shows asks for a new snapshot."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from generation.models import Generation, GpuPrice
from generation.signals import vram_profile_done

from ..models import ExportFile, Study
from ..signals import results_inputs_changed
from .export_files import export_file_delete_stored
from .models import SnapshotReason
from .snapshots import board_snapshot_request


@receiver(results_inputs_changed, dispatch_uid="results.snapshot_on_inputs_changed")
def snapshot_on_inputs_changed(sender, *, study_id: int, reason: str, n_ratings: int = 0, **kwargs) -> None:
    board_snapshot_request(study_id=study_id, reason=reason, n_ratings=n_ratings)


def _refresh(studies) -> None:
    for study_id in studies.values_list("pk", flat=True).distinct():
        board_snapshot_request(study_id=study_id, reason=SnapshotReason.FACTS)


@receiver(vram_profile_done, dispatch_uid="results.snapshot_on_vram_profile")
def snapshot_on_vram_profile(sender, *, image_model_id: int, **kwargs) -> None:
    """A finished profile changes "Min VRAM" and the fits-on table of every board showing that model."""
    _refresh(Study.objects.filter(sweep__image_models=image_model_id))


@receiver([post_save, post_delete], sender=GpuPrice, dispatch_uid="results.snapshot_on_gpu_price")
def snapshot_on_gpu_price(sender, *, instance: GpuPrice, **kwargs) -> None:
    """A price changes "$ per 1,000 images" of every board whose images ran on that GPU (after commit)."""
    gpu = instance.gpu_name
    sweeps = Generation.objects.filter(gpu_name=gpu).values("sweep_id")
    transaction.on_commit(lambda: _refresh(Study.objects.filter(sweep__in=sweeps)))


@receiver(post_delete, sender=ExportFile, dispatch_uid="results.export_file_delete_stored")
def export_file_deleted(sender, *, instance: ExportFile, **kwargs) -> None:
    """An export's row deleted (the admin): its file goes too, once the deletion is committed."""
    name = instance.file.name
    if name:
        transaction.on_commit(lambda: export_file_delete_stored(name=name))
