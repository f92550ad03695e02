"""The item pool's slots: row locks, giving slots back, expiring open assignments.

Below the assignment, panelist and study services (each of them imports this module, and this
module imports none of them), so revoking a panelist or closing a study frees slots without an
import cycle.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F

from ..models import Assignment, AssignmentStatus, Panelist, Study, StudyItem


def for_update(qs, *, skip_locked: bool = False):
    """Row locks where the database has them; SQLite serialises write transactions instead."""
    if connection.features.has_select_for_update:
        if skip_locked and connection.features.has_select_for_update_skip_locked:
            return qs.select_for_update(skip_locked=True, of=("self",))
        return qs.select_for_update(of=("self",)) if connection.features.has_select_for_update_of else qs.select_for_update()
    return qs


def release_items(item_ids: list[int | None]) -> None:
    """Give slots back: one decrement per released assignment."""
    for item_id, n in Counter(i for i in item_ids if i is not None).items():
        StudyItem.objects.filter(pk=item_id).update(n_assigned=F("n_assigned") - n)


def assignments_expire(*, study: Study, now: datetime, everything: bool = False) -> int:
    """Open assignments past their deadline go back to the pool (all of them when a study closes)."""
    qs = Assignment.objects.filter(study=study, status=AssignmentStatus.OPEN)
    if not everything:
        qs = qs.filter(expires_at__lte=now)
    with transaction.atomic(savepoint=False):
        rows = list(for_update(qs, skip_locked=True).values_list("id", "item_id"))
        if not rows:
            return 0
        Assignment.objects.filter(pk__in=[r[0] for r in rows], status=AssignmentStatus.OPEN).update(
            status=AssignmentStatus.EXPIRED
        )
        release_items([r[1] for r in rows])
    return len(rows)


def assignments_release_for_panelist(*, panelist: Panelist) -> None:
    with transaction.atomic(savepoint=False):
        rows = list(
            for_update(Assignment.objects.filter(panelist=panelist, status=AssignmentStatus.OPEN)).values_list(
                "id", "item_id"
            )
        )
        if rows:
            Assignment.objects.filter(pk__in=[r[0] for r in rows]).update(status=AssignmentStatus.EXPIRED)
            release_items([r[1] for r in rows])
