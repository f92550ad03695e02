"""simulate_panel --study ID [--panelists N] [--seed S]: fill a study with simulated, flagged ratings."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from ratings.models import Study
from ratings.results.models import SnapshotReason
from ratings.results.services import ratings_simulate
from ratings.results.snapshots import board_snapshot_refresh
from ratings.services import RatingRefused


class Command(BaseCommand):
    help = "Fill a study with simulated ratings (flagged as simulated; for demos and statistics checks)."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True)
        parser.add_argument("--panelists", type=int, default=20)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--max-items", type=int, default=None, help="Stop after this many answered items.")

    def handle(self, *args, study: int, panelists: int, seed: int, max_items: int | None, **options):
        obj = Study.objects.filter(pk=study).first()
        if obj is None:
            raise CommandError(f"No study with id {study}.")
        if max_items is not None and max_items < 1:
            raise CommandError("--max-items must be at least 1.")
        start = time.perf_counter()
        try:
            result = ratings_simulate(study=obj, panelists=panelists, seed=seed, max_items=max_items)
        except RatingRefused as error:
            raise CommandError(error.message) from None
        if result.opened:
            self.stdout.write(f"opened study {obj.pk} (it was a draft)")
        self.stdout.write(
            f"simulated {result.panelists} panelists: {result.assignments} items, {result.ratings} ratings "
            f"in {time.perf_counter() - start:.1f}s (flagged as simulated)"
        )
        if result.items_short and max_items is None:
            self.stdout.write(f"{result.items_short} items still have fewer than k ratings: a panelist sees each "
                              "image once, so run again (or with more --panelists) to fill them")
        # The page serves snapshots: take one now rather than waiting for the debounced worker task.
        snap = board_snapshot_refresh(study=obj, reason=SnapshotReason.RATINGS)
        self.stdout.write(f"leaderboard snapshot {snap.pk}: {snap.ratings_count} ratings, {snap.compute_seconds:.1f}s")
