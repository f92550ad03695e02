"""Leaderboard snapshots: computed by a task after ratings change, served to every page and export.

A page never computes a board: it reads the latest snapshot and says how old it is and how
many ratings arrived since. New ratings ask for a refresh, debounced: at most one pending per
study, run ``RESULTS_SNAPSHOT_DEBOUNCE_SECONDS`` after the first change, or at once after
``RESULTS_SNAPSHOT_EVERY_RATINGS`` new ratings. An exclusion, a criterion change, an import or a
staff "recompute" asks at once. The refresh is idempotent: same inputs' version, no new row
(unless forced), so a task that runs twice under late acks stores one snapshot.

Past snapshots stay, so a table can be cited, except those made after new ratings beyond the newest
``RESULTS_SNAPSHOT_KEEP_RECENT``: the refresh thins them to the last one of each hour. Staff keep a table
they cite ("Keep this table"), and a kept one is never thinned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max
from django.http import Http404
from django.utils import timezone

from ..models import Rating, Study
from .board import Board, board_from_dict, board_to_dict
from .models import BoardSnapshot, SnapshotReason
from .selectors import leaderboard_compute, ratings_version

log = logging.getLogger(__name__)

SNAPSHOT_TASK = "results.board_snapshot_refresh"
_DUE = "results:snapshot:due:{}"  # a refresh is queued for this study (debounce)
_NEW = "results:snapshot:new:{}"  # ratings announced since that refresh was queued


@dataclass(frozen=True)
class SnapshotView:
    """What a page shows: the board of the latest snapshot, its age and what changed since."""

    snapshot: BoardSnapshot
    board: Board
    age_seconds: float
    new_ratings: int  # ratings stored after the snapshot was taken
    refreshing: bool  # a refresh is queued or running


# --------------------------------------------------------------------------- reads


def board_snapshot_latest(*, study: Study) -> BoardSnapshot | None:
    return BoardSnapshot.objects.filter(study=study).order_by("-created_at", "-id").first()


def board_snapshot_view(*, study: Study, now: datetime | None = None) -> SnapshotView | None:
    """The latest snapshot as a page shows it, or None before the first one (two cheap queries)."""
    snap = board_snapshot_latest(study=study)
    if snap is None:
        return None
    new = Rating.objects.filter(study=study, id__gt=snap.last_rating_id).count()
    age = ((now or timezone.now()) - snap.created_at).total_seconds()
    return SnapshotView(snapshot=snap, board=board_from_dict(snap.board), age_seconds=max(age, 0.0),
                        new_ratings=new, refreshing=cache.get(_DUE.format(study.pk)) is not None)


def board_snapshot_view_of(*, study: Study, snapshot_id: int) -> SnapshotView:
    """A past snapshot of this study (a cited table), as a page shows it; 404 if it is not this study's."""
    snap = BoardSnapshot.objects.filter(study=study, pk=snapshot_id).first()
    if snap is None:
        raise Http404("No such snapshot of this study.")
    new = Rating.objects.filter(study=study, id__gt=snap.last_rating_id).count()
    return SnapshotView(snapshot=snap, board=board_from_dict(snap.board),
                        age_seconds=max((timezone.now() - snap.created_at).total_seconds(), 0.0),
                        new_ratings=new, refreshing=False)


def board_snapshot_for_page(*, study: Study) -> SnapshotView | None:
    """What a page serves. It never computes, except under RESULTS_COMPUTE_ON_READ (tests, no worker):
    then a board whose inputs changed is recomputed here. Otherwise a missing or stale snapshot
    asks for a refresh (debounced: an enqueue, no database write) and the page says so."""
    if settings.RESULTS_COMPUTE_ON_READ:
        board_snapshot_refresh(study=study, reason=SnapshotReason.RATINGS)
        return board_snapshot_view(study=study)
    view = board_snapshot_view(study=study)
    if view is None:
        board_snapshot_request(study_id=study.pk, reason=SnapshotReason.FIRST)
    elif view.new_ratings and not view.refreshing:
        board_snapshot_request(study_id=study.pk, reason=SnapshotReason.RATINGS, n_ratings=view.new_ratings)
    return view


def board_snapshot_list(*, study: Study, limit: int = 20) -> list[BoardSnapshot]:
    """Past snapshots, newest first (without their boards)."""
    return list(BoardSnapshot.objects.filter(study=study).defer("board").order_by("-created_at", "-id")[:limit])


# --------------------------------------------------------------------------- writes


def board_snapshot_refresh(*, study: Study, reason: str = SnapshotReason.RATINGS, force: bool = False) -> BoardSnapshot:
    """Compute the board and store it as a new snapshot, unless the latest one has the same inputs."""
    cache.delete_many([_DUE.format(study.pk), _NEW.format(study.pk)])  # later changes queue a new refresh
    version = ratings_version(study=study)
    latest = board_snapshot_latest(study=study)
    if latest is not None and latest.version == version and not force:
        return latest
    # Counted before computing: a rating that lands during the compute shows as "new since".
    agg = Rating.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
    started = time.perf_counter()
    board = leaderboard_compute(study=study)
    seconds = time.perf_counter() - started
    snap = BoardSnapshot.objects.create(
        study=study, version=version, ratings_count=agg["n"] or 0, last_rating_id=agg["last"] or 0,
        reason=SnapshotReason.FIRST if latest is None and reason == SnapshotReason.RATINGS else reason,
        compute_seconds=seconds, board=board_to_dict(board),
    )
    log.info("leaderboard snapshot %s of study %s: %d ratings, %.2f s (%s)", snap.pk, study.pk,
             snap.ratings_count, seconds, snap.reason)
    board_snapshots_thin(study=study)
    return snap


def board_snapshots_thin(*, study: Study, keep_recent: int | None = None) -> int:
    """Delete the snapshots made after new ratings beyond the newest ``keep_recent`` (RESULTS_SNAPSHOT_KEEP_RECENT;
    0 keeps all), but the last one of each hour. Kept snapshots and those of any other reason stay. Returns how
    many were deleted."""
    recent = settings.RESULTS_SNAPSHOT_KEEP_RECENT if keep_recent is None else keep_recent
    if recent <= 0:
        return 0
    automatic = (BoardSnapshot.objects.filter(study=study, reason=SnapshotReason.RATINGS, kept=False)
                 .order_by("-created_at", "-id").values_list("pk", "created_at"))
    hours: set[datetime] = set()
    drop = []
    for i, (pk, created) in enumerate(automatic.iterator(chunk_size=2000)):  # newest first
        hour = created.replace(minute=0, second=0, microsecond=0)
        if i >= recent and hour in hours:  # an hour's newest snapshot stays
            drop.append(pk)
        hours.add(hour)
    if drop:
        BoardSnapshot.objects.filter(pk__in=drop).delete()
        log.info("leaderboard snapshots of study %s: %d older ones thinned (one an hour kept)", study.pk, len(drop))
    return len(drop)


def board_snapshot_keep(*, study: Study, snapshot_id: int, kept: bool = True) -> BoardSnapshot:
    """Keep a snapshot for good (a table cited in a report), or let it be thinned again; 404 if not this study's."""
    updated = BoardSnapshot.objects.filter(study=study, pk=snapshot_id).update(kept=kept)
    if not updated:
        raise Http404("No such snapshot of this study.")
    log.info("leaderboard snapshot %s of study %s %s", snapshot_id, study.pk, "kept" if kept else "no longer kept")
    return BoardSnapshot.objects.defer("board").get(pk=snapshot_id)


def board_snapshot_request(*, study_id: int, reason: str, n_ratings: int = 0, force: bool = False) -> bool:
    """Ask for a refresh (debounced for new ratings). Returns whether one was queued now."""
    if settings.RESULTS_COMPUTE_ON_READ:  # no worker: pages compute a stale board themselves
        if force:
            board_snapshot_refresh(study=Study.objects.get(pk=study_id), reason=reason, force=True)
        return force
    # The marks of a wait expire with it: the process that asks (a web worker) need not share a cache with
    # the worker that refreshes (the embedded default keeps one cache per process), so the first rating after
    # a wait always starts the next one, and a snapshot is never older than the wait plus one compute.
    wait = max(int(settings.RESULTS_SNAPSHOT_DEBOUNCE_SECONDS), 1)
    due = _DUE.format(study_id)
    if reason != SnapshotReason.RATINGS or force:
        cache.set(due, 1, wait)
        _enqueue(study_id=study_id, reason=reason, force=force, countdown=0)
        return True
    if cache.add(due, 1, wait):
        cache.set(_NEW.format(study_id), n_ratings, wait)
        _enqueue(study_id=study_id, reason=reason, force=False, countdown=wait)
        return True
    new_key = _NEW.format(study_id)
    cache.add(new_key, 0, wait)
    try:
        seen = cache.incr(new_key, n_ratings) if n_ratings else 0
    except ValueError:  # the wait ended between the two calls
        return False
    if seen >= settings.RESULTS_SNAPSHOT_EVERY_RATINGS:
        cache.set(new_key, -10**9, wait)  # one early refresh per wait
        _enqueue(study_id=study_id, reason=reason, force=False, countdown=0)
        return True
    return False


def _enqueue(*, study_id: int, reason: str, force: bool, countdown: float) -> None:
    # By name: the task module is a thin wrapper that imports this one.
    current_app.send_task(SNAPSHOT_TASK, args=[study_id, str(reason), force], countdown=countdown)
