"""Results listens to ratings: a change of a study's inputs asks for a new leaderboard snapshot."""

from __future__ import annotations

from django.dispatch import receiver

from ..signals import results_inputs_changed
from .snapshots import board_snapshot_request


@receiver(results_inputs_changed, dispatch_uid="results.snapshot_on_inputs_changed")
def snapshot_on_inputs_changed(sender, *, study_id: int, reason: str, n_ratings: int = 0, **kwargs) -> None:
    board_snapshot_request(study_id=study_id, reason=reason, n_ratings=n_ratings)
