"""Writes for the results side: filling a study with a simulated panel.

The simulated panel goes through the real assignment path (``assignment_next`` /
``assignment_submit``), so it exercises exactly what people do, and every rating it makes
is flagged ``is_simulated`` (its panelists too). Its truth is deterministic: a demo painter's
image is scored from what it actually drew (generation.engine.demo_draw: its plan for that
prompt and seed), any other model's latent quality per criterion comes from a hash of the
model and criterion, so models differ the same way on every run.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F

from generation.engine.demo_draw.scene import Flaws, image_quality, painter_flaws, plan_image

from ..models import Assignment, AssignmentKind, Study, StudyItem, StudyStatus
from ..selectors import PROMPT_ACCURACY_KEY, criteria_for_prompt
from ..services import (
    RatingRefused,
    StudySetupError,
    assignment_next,
    assignment_submit,
    panelist_create,
    study_open,
)
from .simulation import MID, latent_quality_for

CARELESS_SHARE = 0.1  # simulated panelists who answer at random (the attention checks should catch them)


@dataclass(frozen=True)
class SimulatedRater:
    offset: float  # leniency (+) or harshness (−) on the 1–10 scale
    stretch: float  # how much of the scale they use
    careless: bool


@dataclass(frozen=True)
class SimulationResult:
    panelists: int
    assignments: int
    ratings: int
    opened: bool
    items_short: int  # items still below k (each panelist sees an image once, so a small panel can't fill all)


def _clip(x: float) -> int:
    return max(1, min(10, int(round(x))))


class _Truth:
    """Latent quality per (model, criterion), difficulty per prompt, and the raters."""

    def __init__(self, *, seed: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self._quality: dict[tuple[str, str], float] = {}
        self._difficulty: dict[int, float] = {}
        self._flaws: dict[int, Flaws | None] = {}  # model id -> a demo painter's flaws, None for any other

    def quality(self, slug: str, key: str) -> float:
        if (slug, key) not in self._quality:
            self._quality[(slug, key)] = latent_quality_for(f"{slug}:{key}")
        return self._quality[(slug, key)]

    def image_quality(self, gen, key: str) -> float:
        """What a careful rater sees in this image: for a demo painter, the quality of what it actually
        drew (its plan for this prompt and seed); for any other model, its latent quality."""
        model = gen.model
        if model.pk not in self._flaws:
            try:
                self._flaws[model.pk] = painter_flaws(model.source)
            except (OSError, ValueError, TypeError):
                self._flaws[model.pk] = None
        flaws = self._flaws[model.pk]
        if flaws is not None:
            value = image_quality(plan_image(prompt=gen.prompt.text, seed=int(gen.seed), flaws=flaws)).get(key)
            if value is not None:
                return value
        return self.quality(model.slug, key)

    def difficulty(self, prompt_id: int) -> float:
        if prompt_id not in self._difficulty:
            self._difficulty[prompt_id] = random.Random(f"{self.seed}:{prompt_id}").gauss(0.0, 0.8)
        return self._difficulty[prompt_id]

    def rater(self) -> SimulatedRater:
        return SimulatedRater(offset=self.rng.gauss(0.0, 0.7), stretch=2 ** self.rng.gauss(0.0, 0.25),
                              careless=self.rng.random() < CARELESS_SHARE)

    def scores(self, *, assignment: Assignment, rater: SimulatedRater, criteria) -> dict[tuple[int, int], int]:
        """Every image of the item on every criterion; in a pair the same latent values decide."""
        images = [assignment.left]
        if assignment.kind == AssignmentKind.PAIR and assignment.right is not None:  # a pair has both (constraint)
            images.append(assignment.right)
        out: dict[tuple[int, int], int] = {}
        for gen in images:
            for c in criteria:
                if rater.careless:
                    out[(gen.pk, c.pk)] = self.rng.randint(1, 10)
                    continue
                if assignment.is_gold and c.key == PROMPT_ACCURACY_KEY:
                    latent = 2.0  # the image was made for another prompt: it does not match
                else:
                    latent = self.image_quality(gen, c.key) - self.difficulty(gen.prompt_id)
                noisy = MID + rater.stretch * (latent - MID) + rater.offset + self.rng.gauss(0.0, 1.0)
                out[(gen.pk, c.pk)] = _clip(noisy)
        return out


def ratings_simulate(*, study: Study, panelists: int = 20, seed: int = 0, max_items: int | None = None) -> SimulationResult:
    """Fill a study with simulated ratings until every item has its k ratings (or ``max_items``).

    A draft study is opened first (it needs rendered images); a closed one is refused.
    """
    if panelists < 1:
        raise StudySetupError("--panelists must be at least 1.")
    if study.status == StudyStatus.CLOSED:
        raise StudySetupError("This study is closed; simulated ratings would change published results.")
    opened = False
    if study.status == StudyStatus.DRAFT:
        study_open(study=study)
        opened = True
    truth = _Truth(seed=seed)
    panel = []
    for _ in range(panelists):
        p = panelist_create(study=study, pseudonym=f"sim-{secrets.token_hex(4)}", is_simulated=True)
        panel.append((p, truth.rater()))
    n_assignments = n_ratings = 0
    active = list(panel)
    while active and (max_items is None or n_assignments < max_items):
        still = []
        # one transaction per round of the panel: SQLite commits a round at once, not every item
        with transaction.atomic():
            for panelist, rater in active:
                if max_items is not None and n_assignments >= max_items:
                    break
                try:
                    assignment = assignment_next(panelist=panelist)
                except RatingRefused:
                    continue
                if assignment is None:
                    continue
                assignment = Assignment.objects.select_related(
                    "left__model", "right__model", "left__prompt", "right__prompt", "shown_prompt").get(
                    pk=assignment.pk
                )
                criteria = criteria_for_prompt(study=study, prompt=assignment.shown_prompt)
                # the service measures time per item from serving to answering: a simulated answer
                # comes a simulated few seconds after its item was served
                saved = assignment_submit(
                    assignment_id=assignment.pk, panelist=panelist,
                    scores=truth.scores(assignment=assignment, rater=rater, criteria=criteria),
                    now=assignment.created_at + timedelta(milliseconds=int(truth.rng.lognormvariate(9.0, 0.5))),
                )
                n_assignments += 1
                n_ratings += len(saved)
                still.append((panelist, rater))
        active = still
    short = StudyItem.objects.filter(study=study, n_done__lt=F("target")).count()
    return SimulationResult(panelists=panelists, assignments=n_assignments, ratings=n_ratings, opened=opened,
                            items_short=short)
