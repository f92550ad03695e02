"""What ratings announce to whoever reads them (results listens; ratings never import results)."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

# Sent after commit when a study's ratings, exclusions or criteria changed.
# Arguments: study_id (int), reason (str: "ratings", "exclusion", "criteria", "import"),
# n_ratings (int: how many ratings were added, for the debounce).
results_inputs_changed = Signal()


def results_inputs_changed_on_commit(*, study_id: int, reason: str, n_ratings: int = 0) -> None:
    """Announce a change once the transaction that made it commits (never for a rolled-back one)."""
    transaction.on_commit(lambda: results_inputs_changed.send(
        sender=None, study_id=study_id, reason=reason, n_ratings=n_ratings))
