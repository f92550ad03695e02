"""Leaderboard snapshots: the board computed off the request path, kept so a table can be cited."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SnapshotReason(models.TextChoices):
    RATINGS = "ratings", "new ratings"
    EXCLUSION = "exclusion", "a panelist excluded or re-included"
    CRITERIA = "criteria", "criteria changed"
    FORCED = "forced", "recomputed on request"
    FIRST = "first", "first leaderboard"
    IMPORT = "import", "ratings imported"
    FACTS = "facts", "a VRAM profile or a GPU price changed"


class BoardSnapshot(models.Model):
    """One computed leaderboard of a study, with what it was computed from.

    ``version`` is the inputs' version (``selectors.ratings_version``): two snapshots with the
    same version show the same board. ``last_rating_id`` lets a page count the ratings that
    arrived since without counting the whole study. Past snapshots stay, but for those made after
    new ratings, which are thinned (``snapshots.board_snapshots_thin``) unless ``kept``.
    """

    study = models.ForeignKey("ratings.Study", on_delete=models.CASCADE, related_name="board_snapshots")
    created_at = models.DateTimeField(default=timezone.now)
    version = models.CharField(max_length=32)
    ratings_count = models.PositiveIntegerField()
    last_rating_id = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=16, choices=SnapshotReason.choices)
    compute_seconds = models.FloatField()
    board = models.JSONField()
    kept = models.BooleanField(default=False, help_text=(
        "Kept for good (a cited table): never thinned. Snapshots after new ratings are thinned to one an hour "
        "beyond the newest EVALSITE_RESULTS_SNAPSHOT_KEEP_RECENT; every other reason stays."))

    class Meta:
        indexes = [models.Index(fields=["study", "-created_at"], name="results_snapshot_latest")]

    def __str__(self) -> str:
        return f"Leaderboard of study {self.study_id} as of {self.created_at:%Y-%m-%d %H:%M:%S} ({self.ratings_count} ratings)"
