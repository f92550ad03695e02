"""Handing out items and taking answers: the part that must stay correct under concurrency.

An item (StudyItem) holds the counters. Taking an item means locking its row
(``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent panelists take different rows
instead of queueing; on SQLite every write transaction is ``BEGIN IMMEDIATE`` and so serialised)
and incrementing ``n_assigned``, which a check constraint keeps at or below the item's k.
An answer locks its assignment row, so the same answer submitted twice, even at the same
moment, is written once; a unique constraint on (assignment, image, criterion) backs that up.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from generation.models import Generation, GenerationStatus
from prompts.models import Prompt

from .. import active
from ..models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    AssignmentStrategy,
    Criterion,
    Panelist,
    Rating,
    RatingChange,
    Side,
    Study,
    StudyItem,
)
from ..selectors import CHANGE_LAST, PROMPT_ACCURACY_KEY, criteria_for_prompt, panelist_changeable, study_criteria
from ..signals import results_inputs_changed_on_commit
from ..types import ItemCandidate
from . import item_sql
from .errors import AlreadyAnswered, AnswerLocked, InvalidScores, ItemExpired, NotAssigned, RatingRefused
from .panelists import panelist_check
from .pool import assignments_expire, for_update, release_items

# Groups (kind x model or model pair) tried before taking any free item; items a strategy sees.
GROUPS_TRIED = 8
ACTIVE_POOL = 200
SKIP_REASON_MAX = 200
EXPIRE_EVERY_S = 5
FILL_CACHE_S = 3
CLIENT_SLACK_MS = 2000  # a page's timer may start a little before the server's clock saw the item leave

_rng = random.SystemRandom()


@dataclass
class History:
    """What one query tells about a panelist: images given so far, last prompt, answered, open item."""

    seen: set[int]
    last_prompt: int | None
    answered: int
    open_item: tuple[int, datetime] | None  # (id, expires at) of the item they have open


def _history(*, panelist: Panelist) -> History:
    history = History(set(), None, 0, None)
    rows = Assignment.objects.filter(panelist=panelist).order_by("-id").values_list(
        "id", "left_id", "right_id", "shown_prompt_id", "status", "expires_at"
    )
    for pk, left, right, shown, status, expires in rows:
        if history.last_prompt is None:
            history.last_prompt = shown
        history.seen.add(left)
        if right is not None:
            history.seen.add(right)
        if status in (AssignmentStatus.DONE, AssignmentStatus.SKIPPED):
            history.answered += 1
        elif status == AssignmentStatus.OPEN and history.open_item is None:
            history.open_item = (pk, expires)
    return history


def _fill_sums(*, study: Study) -> dict[tuple[str, str], list[int]]:
    """Assigned and wanted per (kind, model or model pair): how far behind each group is.

    Kept per process for a few seconds and bumped by that process's own picks; a hint for
    balance, never for the k limit (the row lock and the check constraint guard that).
    """
    sums = cache.get(f"ratings:fill:{study.pk}")
    if sums is None:
        sums = {
            (r["kind"], r["model_pair"]): [r["a"] or 0, r["t"] or 0]
            for r in StudyItem.objects.filter(study=study)
            .values("kind", "model_pair")
            .annotate(a=Sum("n_assigned"), t=Sum("target"))
            .order_by()
        }
    return sums


def _group_order(sums: dict[tuple[str, str], list[int]]) -> list[tuple[str, str]]:
    """Groups (kind x model or model pair) in random order, each drawn with weight = its free slots.

    That is a uniformly random free slot of the whole study: balance holds over the study (a group
    with more left is drawn more often, one that is full never), while a panelist's own sequence is
    as random as a shuffled deck, never a rotation over models (issue 12: the fifth item's model
    was known). Efraimidis-Spirakis keys, u ** (1 / w), give the weighted order in one sort.
    """
    def key(group):
        free = sums[group][1] - sums[group][0]
        return _rng.random() ** (1.0 / free) if free > 0 else -1.0

    return sorted(sums, key=key, reverse=True)


def _pick_balanced(*, study: Study, seen: set[int], last_prompt: int | None) -> StudyItem | None:
    """Lock one item: fewest assignments first; among those, a random free slot of the study (weighted by group).

    1. the lowest assignment count among items this panelist may get (index walk, no lock);
    2. groups in a random order weighted by their free slots (``_group_order``); the first group
       with a free item at that count gives it (SKIP LOCKED: busy rows go to other requests);
    3. if racing requests took those, the first free item in (count, shuffle) order.
    """
    where: item_sql.FreeWhere = {"study": study, "seen": seen, "last_prompt": last_prompt}
    level = item_sql.free_level(**where)
    if level is None:
        return None
    sums = _fill_sums(study=study)
    groups = _group_order(sums)
    item = None
    for kind, model_pair in groups[:GROUPS_TRIED]:
        item = item_sql.lock_free_item(**where, kind=kind, model_pair=model_pair, level=level)
        if item is not None:
            break
    if item is None:
        item = item_sql.lock_free_item(**where)
        if item is None and connection.features.has_select_for_update_skip_locked:
            # Everything free is locked by other requests right now: wait for one instead of
            # wrongly reporting "nothing left" (the row is re-checked after the other commits).
            item = item_sql.lock_free_item(**where, skip_locked=False)
    if item is not None and (item.kind, item.model_pair) in sums:
        sums[(item.kind, item.model_pair)][0] += 1
        cache.set(f"ratings:fill:{study.pk}", sums, timeout=FILL_CACHE_S)
    return item


def _pick_active(*, study: Study, panelist: Panelist, seen: set[int], last_prompt: int | None) -> StudyItem | None:
    """Let the active strategy choose among the free items, then lock its choice (if still free)."""
    where: item_sql.FreeWhere = {"study": study, "seen": seen, "last_prompt": last_prompt}
    rows = item_sql.free_candidates(**where, limit=ACTIVE_POOL)
    if not rows:
        return None
    by_key: dict[tuple, int] = {}
    candidates = []
    for r in rows:
        gens = (r.first_id,) if r.second_id is None else (r.first_id, r.second_id)
        # second_model_id is None exactly when second_id is (the LEFT JOIN of a non-null key)
        models = (r.first_model_id,) if r.second_model_id is None else (r.first_model_id, r.second_model_id)
        by_key[(r.kind, gens)] = r.id
        candidates.append(ItemCandidate(kind=r.kind, generation_ids=gens, model_ids=models,
                                        prompt_id=r.prompt_id, n_ratings=r.n_done))
    choice = active.pick_active_item(study=study, panelist=panelist, candidates=candidates)
    if choice is None:
        return None
    item_id = by_key.get((choice.kind, tuple(choice.generation_ids)))
    if item_id is None:
        item_id = by_key.get((choice.kind, tuple(reversed(choice.generation_ids))))
    if item_id is None:
        raise ValueError("pick_active_item returned an item that was not among the candidates")
    return item_sql.lock_free_item(**where, item_id=item_id)


def _gold_assignment(*, study: Study, panelist: Panelist, seen: set[int], last_prompt: int | None,
                     now: datetime) -> Assignment | None:
    """A known mismatch: a rendered image shown with another prompt of the suite."""
    gen = (
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .exclude(image="")
        .exclude(pk__in=seen)
        .only("id", "prompt_id", "public_id")
        .order_by("?")
        .first()
    )
    if gen is None:
        return None
    prompts = Prompt.objects.filter(suite_id=study.sweep.suite_id).exclude(pk=gen.prompt_id)
    if last_prompt is not None:
        prompts = prompts.exclude(pk=last_prompt)
    shown = prompts.order_by("?").first()
    if shown is None:
        return None
    return Assignment.objects.create(
        study=study, panelist=panelist, kind=AssignmentKind.SINGLE, left=gen, shown_prompt=shown,
        is_gold=True, expires_at=now + timedelta(minutes=study.assignment_timeout_minutes),
    )


def _wants_gold(*, study: Study, criteria: list[Criterion]) -> bool:
    if not study.gold_enabled or study.gold_share <= 0:
        return False
    if not any(c.key == PROMPT_ACCURACY_KEY for c in criteria):
        return False
    return _rng.random() < study.gold_share


def _expiry_due(*, study: Study, now: datetime) -> bool:
    """Others' timed-out items go back to the pool; looking every few seconds (per process) is plenty."""
    key = f"ratings:expired_at:{study.pk}"
    last = cache.get(key)
    if last is not None and 0 <= now.timestamp() - last < EXPIRE_EVERY_S:
        return False
    cache.set(key, now.timestamp(), timeout=3600)
    return True


def _take(*, panelist: Panelist, now: datetime) -> Assignment | None:
    study = panelist.study
    history = _history(panelist=panelist)
    if history.open_item is not None:
        open_id, open_expires = history.open_item
        if open_expires > now:
            return Assignment.objects.select_related("left", "right", "shown_prompt").get(pk=open_id)
        # Their own item timed out: expire it here, waiting for its lock if another request holds
        # it (a new open assignment must not meet the old one in the one-open constraint).
        rows = list(for_update(Assignment.objects.filter(pk=open_id, status=AssignmentStatus.OPEN))
                    .values_list("id", "item_id"))
        if rows:
            Assignment.objects.filter(pk=open_id).update(status=AssignmentStatus.EXPIRED)
            release_items([rows[0][1]])
    elif _expiry_due(study=study, now=now):
        assignments_expire(study=study, now=now)
    seen, last_prompt, answered = history.seen, history.last_prompt, history.answered
    if study.items_per_panelist and answered >= study.items_per_panelist:
        return None
    if study.assignment_strategy == AssignmentStrategy.ACTIVE:
        item = _pick_active(study=study, panelist=panelist, seen=seen, last_prompt=last_prompt)
        if item is None:
            return None
    else:
        item = _pick_balanced(study=study, seen=seen, last_prompt=last_prompt)
        if item is None:
            return None
    expires = now + timedelta(minutes=study.assignment_timeout_minutes)
    criteria = study_criteria(study=study)
    if _wants_gold(study=study, criteria=criteria):
        gold = _gold_assignment(study=study, panelist=panelist, seen=seen, last_prompt=last_prompt, now=now)
        if gold is not None:
            seen.add(gold.left_id)
            return gold
    StudyItem.objects.filter(pk=item.pk).update(n_assigned=F("n_assigned") + 1)
    # item_sql loaded the images' public ids and the prompt with the lock: they are handed on for display
    left, right = item.first, item.second
    if item.kind == AssignmentKind.PAIR and right is not None and _rng.random() < 0.5:
        left, right = right, left
    seen.update(g.pk for g in (left, right) if g is not None)
    assignment = Assignment.objects.create(
        study=study, panelist=panelist, item=item, kind=item.kind, left_id=left.pk,
        right_id=None if right is None else right.pk, shown_prompt_id=item.prompt_id, expires_at=expires,
    )
    assignment.left, assignment.right, assignment.shown_prompt = left, right, item.prompt
    return assignment


def assignment_next(*, panelist: Panelist, now: datetime | None = None) -> Assignment | None:
    """The panelist's open item, or a new one (its images and prompt loaded for display); None when
    there is nothing left for them. Never creates items: they follow the sweep (study_items_sync runs
    when a study opens and, enqueued, when images finish rendering), so a request writes no item.

    Balanced: the free items with the fewest assignments first, never an image this panelist
    was given before, never the prompt they saw last; ties go to the kind / model pair
    furthest behind. ``study.assignment_strategy == "active"`` hands the choice to
    ``ratings.active.pick_active_item``. Raises RatingRefused when the link or study forbids it.
    """
    now = now or timezone.now()
    panelist_check(panelist=panelist)
    try:
        with transaction.atomic():
            return _take(panelist=panelist, now=now)
    except IntegrityError:
        # The same panelist asked twice at once: the other request's open assignment wins.
        assignment = (Assignment.objects.select_related("left", "right", "shown_prompt")
                      .filter(panelist=panelist, status=AssignmentStatus.OPEN).first())
        if assignment is None:
            raise
        return assignment


def _image_sides(assignment: Assignment) -> dict[str, int]:
    """Side -> image id of an assignment (a pair always has its right image: a check constraint says so)."""
    if assignment.kind == AssignmentKind.SINGLE or assignment.right_id is None:
        return {Side.SINGLE: assignment.left_id}
    return {Side.LEFT: assignment.left_id, Side.RIGHT: assignment.right_id}


def _expected_cells(*, assignment: Assignment, criteria: list[Criterion]) -> dict[tuple[int, int], str]:
    return {(gen_id, c.pk): side for side, gen_id in _image_sides(assignment).items() for c in criteria}


def _validate_scores(*, scores: dict, expected: dict[tuple[int, int], str], study: Study,
                     criteria: list[Criterion]) -> dict[tuple[int, int], int]:
    if not isinstance(scores, dict) or not scores:
        raise InvalidScores("No scores were sent. Please score every criterion.")
    gens = {g for g, _ in expected}
    crits = {c.pk for c in criteria}
    clean: dict[tuple[int, int], int] = {}
    for key, value in scores.items():
        try:
            gen_id, crit_id = int(key[0]), int(key[1])
        except (TypeError, ValueError, IndexError):
            raise InvalidScores(f"Malformed score key {key!r}.") from None
        if gen_id not in gens:
            raise NotAssigned("That image is not part of this item.")
        if crit_id not in crits:
            if Criterion.objects.filter(pk=crit_id, study=study).exists():
                raise InvalidScores("That criterion does not apply to this prompt.")
            raise InvalidScores("That criterion is not part of this study.")
        if isinstance(value, bool):
            raise InvalidScores("Scores are whole numbers from 1 to 10.")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidScores("Scores are whole numbers from 1 to 10.") from None
        if str(value).strip() != str(number) or not 1 <= number <= 10:
            raise InvalidScores(f"{value!r} is not a score: use a whole number from 1 to 10.")
        clean[(gen_id, crit_id)] = number
    missing = set(expected) - set(clean)
    if missing:
        names = sorted({c.name for c in criteria if any(k[1] == c.pk for k in missing)})
        raise InvalidScores("Please score every criterion: missing " + ", ".join(names) + ".")
    return clean


def assignment_submit(
    *,
    assignment_id: int,
    panelist: Panelist,
    scores: dict[tuple[int, int], int],
    client_elapsed_ms: int | None = None,
    now: datetime | None = None,
) -> list[Rating]:
    """Save one answer: every applicable criterion for every image of the item, all or nothing.

    ``scores`` maps (generation id, criterion id) to a whole number from 1 to 10. The time per item
    is measured here, from serving the item to ``now``; ``client_elapsed_ms`` (the page's own
    figure) is kept beside it as a hint only.
    """
    return _submit(assignment_id=assignment_id, panelist=panelist, to_scores=lambda _a: scores,
                   client_elapsed_ms=client_elapsed_ms, now=now)


def assignment_submit_sides(
    *,
    assignment_id: int,
    panelist: Panelist,
    answers: Mapping[tuple[str, str], object],
    client_elapsed_ms: int | None = None,
    now: datetime | None = None,
) -> list[Rating]:
    """As assignment_submit, with scores keyed the way the page sends them: (side, criterion key).

    The page never names images by id (ids are sequential per model, so they would leak
    which images share a model); the side is resolved here, under the row lock.
    """

    def to_scores(assignment: Assignment) -> dict[tuple[int, int], object]:
        return _side_scores(assignment=assignment, study=panelist.study, answers=answers)

    return _submit(assignment_id=assignment_id, panelist=panelist, to_scores=to_scores,
                   client_elapsed_ms=client_elapsed_ms, now=now)


def _side_scores(*, assignment: Assignment, study: Study,
                 answers: Mapping[tuple[str, str], object]) -> dict[tuple[int, int], object]:
    """(side, criterion key) -> value becomes (image id, criterion id) -> value, for this assignment."""
    sides = _image_sides(assignment)
    by_key = {c.key: c for c in study_criteria(study=study)}
    out: dict[tuple[int, int], object] = {}
    for (side, key), value in answers.items():
        if side not in sides:
            raise NotAssigned("That image is not part of this item.")
        criterion = by_key.get(key)
        if criterion is None:
            raise InvalidScores(f"{key!r} is not a criterion of this study.")
        out[(sides[side], criterion.pk)] = value
    return out


def assignment_change_sides(
    *,
    assignment_id: int,
    panelist: Panelist,
    answers: Mapping[tuple[str, str], object],
    now: datetime | None = None,
) -> list[Rating]:
    """Change one of the panelist's last answers ("previous"): the new scores replace the old,
    each old score is kept as a RatingChange.

    Only an answer among their last CHANGE_LAST, within CHANGE_WITHIN, while the study is open.
    The item's counters are untouched (it was counted once, when first answered), so no item
    goes past its k, and the ratings stay one per (assignment, image, criterion).
    """
    now = now or timezone.now()
    panelist_check(panelist=panelist)
    study = panelist.study
    with transaction.atomic():
        assignment = for_update(Assignment.objects.filter(pk=assignment_id, panelist=panelist)).select_related(
            "shown_prompt").first()
        if assignment is None:
            raise NotAssigned("This item is not assigned to you.")
        if assignment.status != AssignmentStatus.DONE or assignment.pk not in panelist_changeable(
                panelist=panelist, now=now):
            raise AnswerLocked(f"Only your last {CHANGE_LAST} answers of this sitting can be changed.")
        criteria = criteria_for_prompt(study=study, prompt=assignment.shown_prompt)
        expected = _expected_cells(assignment=assignment, criteria=criteria)
        clean = _validate_scores(scores=_side_scores(assignment=assignment, study=study, answers=answers),
                                 expected=expected, study=study, criteria=criteria)
        existing = {(r.generation_id, r.criterion_id): r
                    for r in for_update(Rating.objects.filter(assignment=assignment))}
        changes, kept = [], []
        for cell, score in sorted(clean.items()):
            rating = existing.get(cell)
            if rating is None:  # a criterion added since: a new rating, still one per cell
                rating = Rating.objects.create(
                    assignment=assignment, generation_id=cell[0], criterion_id=cell[1], panelist=panelist,
                    study_id=study.pk, score=score, side=expected[cell], is_simulated=panelist.is_simulated)
            elif rating.score != score:
                changes.append(RatingChange(rating=rating, score=rating.score, changed_at=now))
                Rating.objects.filter(pk=rating.pk).update(score=score)
                rating.score = score
            kept.append(rating)
        RatingChange.objects.bulk_create(changes)
        results_inputs_changed_on_commit(study_id=study.pk, reason="ratings", n_ratings=len(changes))
    return kept


def _submit(*, assignment_id: int, panelist: Panelist, to_scores, client_elapsed_ms: int | None,
            now: datetime | None) -> list[Rating]:
    try:
        return _submit_locked(assignment_id=assignment_id, panelist=panelist, to_scores=to_scores,
                              client_elapsed_ms=client_elapsed_ms, now=now)
    except IntegrityError:
        # The unique (assignment, image, criterion) constraint: a second copy of a saved answer.
        raise AlreadyAnswered("This answer was already saved.") from None


def _submit_locked(*, assignment_id: int, panelist: Panelist, to_scores, client_elapsed_ms: int | None,
                   now: datetime | None) -> list[Rating]:
    now = now or timezone.now()
    panelist_check(panelist=panelist)
    study = panelist.study  # the assignment's study: a panelist belongs to one study
    with transaction.atomic():
        locked = list(
            for_update(Assignment.objects.filter(pk=assignment_id, panelist=panelist))
            .select_related("shown_prompt")
            .order_by()[:1]
        )
        assignment = locked[0] if locked else None
        if assignment is None:
            raise NotAssigned("This item is not assigned to you.")
        if assignment.status == AssignmentStatus.DONE:
            raise AlreadyAnswered("This answer was already saved.")
        if assignment.status == AssignmentStatus.SKIPPED:
            raise AlreadyAnswered("This item was skipped.")
        if assignment.status == AssignmentStatus.EXPIRED or assignment.expires_at <= now:
            if assignment.status == AssignmentStatus.OPEN:
                assignments_expire(study=study, now=now)
            raise ItemExpired(
                f"This item timed out after {study.assignment_timeout_minutes} minutes and went "
                "back to the pool; here is a new one."
            )
        scores = to_scores(assignment)
        criteria = criteria_for_prompt(study=study, prompt=assignment.shown_prompt)
        expected = _expected_cells(assignment=assignment, criteria=criteria)
        clean = _validate_scores(scores=scores, expected=expected, study=study, criteria=criteria)
        elapsed_ms = max(0, int((now - assignment.created_at).total_seconds() * 1000))  # served -> answered
        if client_elapsed_ms is not None and not 0 <= client_elapsed_ms <= elapsed_ms + CLIENT_SLACK_MS:
            client_elapsed_ms = None  # a figure the server's own clock contradicts is no hint at all
        ratings = [
            Rating(assignment=assignment, generation_id=gen_id, criterion_id=crit_id, panelist=panelist,
                   study_id=study.pk, score=score, side=expected[(gen_id, crit_id)],
                   is_simulated=panelist.is_simulated)
            for (gen_id, crit_id), score in sorted(clean.items())
        ]
        Rating.objects.bulk_create(ratings)
        results_inputs_changed_on_commit(study_id=study.pk, reason="ratings", n_ratings=len(ratings))
        Assignment.objects.filter(pk=assignment.pk).update(
            status=AssignmentStatus.DONE, answered_at=now, elapsed_ms=min(elapsed_ms, 2**31 - 1),
            client_elapsed_ms=client_elapsed_ms,
        )
        if assignment.item_id is not None:
            StudyItem.objects.filter(pk=assignment.item_id).update(n_done=F("n_done") + 1)
        if panelist.last_seen_at is None or (now - panelist.last_seen_at).total_seconds() > 60:
            Panelist.objects.filter(pk=panelist.pk).update(last_seen_at=now)
    return ratings


def assignment_skip(*, assignment_id: int, panelist: Panelist, reason: str, now: datetime | None = None) -> Assignment:
    """Skip with a reason; the item's slot goes back to the pool for someone else."""
    now = now or timezone.now()
    panelist_check(panelist=panelist)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidScores("Please say why you skip (e.g. the image did not load).")
    if len(reason) > SKIP_REASON_MAX:
        raise InvalidScores(f"Please keep the reason under {SKIP_REASON_MAX} characters.")
    with transaction.atomic():
        assignment = for_update(Assignment.objects.filter(pk=assignment_id, panelist=panelist)).first()
        if assignment is None:
            raise NotAssigned("This item is not assigned to you.")
        if assignment.status != AssignmentStatus.OPEN:
            raise AlreadyAnswered("This item was already answered or skipped.")
        updated = Assignment.objects.filter(pk=assignment.pk, status=AssignmentStatus.OPEN).update(
            status=AssignmentStatus.SKIPPED, skip_reason=reason, answered_at=now
        )
        if not updated:
            raise RatingRefused("This item changed meanwhile; please reload.")
        release_items([assignment.item_id])
        assignment.status = AssignmentStatus.SKIPPED
        assignment.skip_reason = reason
    return assignment


__all__ = [
    "assignment_change_sides",
    "assignment_next",
    "assignment_skip",
    "assignment_submit",
    "assignment_submit_sides",
]
