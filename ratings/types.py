"""Plain data passed between the assignment service and the assignment strategies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ItemCandidate:
    """An item a panelist could be shown next: one image, or two images of one prompt and seed."""

    kind: str  # "single" | "pair"
    generation_ids: tuple[int, ...]  # one for a single; two for a pair (unordered; sides are randomised later)
    model_ids: tuple[int, ...]
    prompt_id: int
    n_ratings: int  # completed assignments of this item so far
