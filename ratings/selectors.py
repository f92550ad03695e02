"""Reads for studies, panelists and assignments (writes live in ratings.services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from generation.models import Generation, GenerationStatus, Sweep
from generation.selectors import sweep_progress
from prompts.models import Prompt

from .models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Criterion,
    Panelist,
    Rating,
    Side,
    Study,
    StudyItem,
)

# A gold item (an image shown with a prompt it was not made for) is failed when its
# prompt-accuracy score is at least this: "high" on a 1-10 scale.
GOLD_FAIL_SCORE = 6
# A panelist is flagged below this gold pass rate.
GOLD_FLAG_BELOW = 0.75
PROMPT_ACCURACY_KEY = "prompt_accuracy"
# "Previous": a panelist may change their last few answers of this sitting (while the study is open).
CHANGE_LAST = 3
CHANGE_WITHIN = timedelta(hours=1)


# --- criteria -------------------------------------------------------------------


def _norm(values) -> set[str]:
    return {str(v).strip().lower() for v in values if str(v).strip()}


# Categories that are about rendering text, whatever the criterion lists (the importer's names).
TEXT_CATEGORIES = {"text", "writing & symbols", "text rendering", "text_rendering", "typography"}


def criterion_applies(*, criterion: Criterion, prompt: Prompt) -> bool:
    """Categories narrow a criterion; text-only criteria also need the prompt to ask for text."""
    category = (prompt.category or "").strip().lower()
    categories = _norm(criterion.categories)
    if criterion.text_prompts_only:
        return bool(prompt.expected_text) or category in categories or category in TEXT_CATEGORIES
    return not categories or category in categories


CRITERIA_CACHE_S = 10


def study_criteria(*, study: Study) -> list[Criterion]:
    """The study's criteria, shared by a process's requests for a few seconds (from the cache).

    Criteria change rarely (staff edits, which forget the cached copy); a panelist request needs
    them up to three times, each a cache read, never a query. Nothing is kept on the Study instance.
    """
    key = f"ratings:criteria:{study.pk}"
    cached = cache.get(key)
    if cached is None:
        cached = list(Criterion.objects.filter(study_id=study.pk))
        cache.set(key, cached, timeout=CRITERIA_CACHE_S)
    return cached


def study_criteria_forget(*, study: Study) -> None:
    cache.delete(f"ratings:criteria:{study.pk}")


def criteria_for_prompt(*, study: Study, prompt: Prompt, criteria: list[Criterion] | None = None) -> list[Criterion]:
    """The study's criteria that apply to this prompt, in display order."""
    if criteria is None:
        criteria = study_criteria(study=study)
    return [c for c in criteria if criterion_applies(criterion=c, prompt=prompt)]


# --- panelists ------------------------------------------------------------------


def panelist_by_token(*, token: str) -> Panelist | None:
    rows = list(Panelist.objects.select_related("study", "study__sweep").filter(token=token).order_by()[:1])
    return rows[0] if rows else None


LOCKED_ONCE_ITEMS = ("sweep", "mode")


def study_locked_fields(*, study: Study) -> tuple[str, ...]:
    """Fields that cannot change once the study has items: its items belong to that sweep and mode."""
    if study.pk is None or not StudyItem.objects.filter(study=study).exists():
        return ()
    return LOCKED_ONCE_ITEMS


def study_by_share_token(*, token: str) -> Study | None:
    if not token:
        return None
    return Study.objects.filter(share_token=token).first()


def panelist_invite_url(*, panelist: Panelist) -> str:
    return settings.SITE_URL + reverse("ratings:panelist_home", kwargs={"token": panelist.token})


def study_share_url(*, study: Study) -> str:
    if not study.share_token:
        return ""
    return settings.SITE_URL + reverse("ratings:panelist_home", kwargs={"token": study.share_token})


def panelist_items_estimate(*, panelist: Panelist, seen: int = 0) -> int:
    """How many items this panelist can still be given: free items, at most their unseen images per item."""
    study = panelist.study
    left = study_free_count(study=study)
    if left:
        per_item = 1 if study.mode != "pair" else 2
        left = min(left, max(sweep_done_count(sweep_id=study.sweep_id) - seen, 0) // per_item)
    if study.items_per_panelist:
        left = min(left, study.items_per_panelist)
    return left


def panelist_counts(*, study: Study) -> dict[int, dict[str, int]]:
    """Per panelist: items answered (gold included: the panelist cannot tell), skipped, open.

    The one count behind the panelist's progress line, their thank-you page and the staff dashboard.
    """
    return {
        r["panelist_id"]: {"answered": r["answered"], "skipped": r["skipped"], "open": r["open"]}
        for r in Assignment.objects.filter(study=study).values("panelist_id").annotate(
            answered=Count("id", filter=Q(status=AssignmentStatus.DONE)),
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
            open=Count("id", filter=Q(status=AssignmentStatus.OPEN)),
        ).order_by()
    }


def panelist_progress(*, panelist: Panelist, current: Assignment | None = None) -> dict:
    """Item n of m, with answered and skipped counted apart; m never shrinks.

    m is what the panelist was told when they started (``planned_items``: the quota, or what was
    free for them then); it only grows, when they go past it. Without a quota it reads "about m".
    """
    counts = Assignment.objects.filter(panelist=panelist).aggregate(
        answered=Count("id", filter=Q(status=AssignmentStatus.DONE)),
        skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
    )
    answered, skipped = counts["answered"], counts["skipped"]
    handled = answered + skipped
    planned = panelist.planned_items
    if planned is None:  # started before plans were recorded
        planned = handled + panelist_items_estimate(panelist=panelist)
    quota = panelist.study.items_per_panelist
    total = max(planned, handled + (current is not None), 1)
    return {"n": min(handled + 1, total), "m": total, "about": not (quota and total == quota),
            "answered": answered, "skipped": skipped, "handled": handled}


def study_free_count(*, study: Study) -> int:
    """Items still short of their k; cached for a few seconds per process (progress is a guide)."""
    key = f"ratings:free:{study.pk}"
    count = cache.get(key)
    if count is None:
        count = StudyItem.objects.filter(study_id=study.pk, n_assigned__lt=F("target")).count()
        cache.set(key, count, timeout=3)
    return count


def sweep_done_count(*, sweep_id: int) -> int:
    """Rendered images of a sweep; cached briefly per process (it only grows, and m is a guide)."""
    key = f"ratings:sweep_done:{sweep_id}"
    count = cache.get(key)
    if count is None:
        count = Generation.objects.filter(sweep_id=sweep_id, status=GenerationStatus.DONE).count()
        cache.set(key, count, timeout=30)
    return count


# --- assignment display ---------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One image slot on the rating page: what the panelist sees, nothing more."""

    side: str  # single | left | right
    label: str  # "Image" | "Left image (A)" | "Right image (B)"
    generation_id: int
    public_id: str


def assignment_shown(*, assignment: Assignment) -> list[Shown]:
    """The images of an assignment in the order shown (left/right as recorded)."""
    right = assignment.right
    if assignment.kind == AssignmentKind.SINGLE or right is None:  # a pair has its right image (check constraint)
        return [Shown(Side.SINGLE, "Image", assignment.left_id, assignment.left.public_id)]
    return [
        Shown(Side.LEFT, "Left image (A)", assignment.left_id, assignment.left.public_id),
        Shown(Side.RIGHT, "Right image (B)", right.pk, right.public_id),
    ]


def panelist_changeable_refs(*, panelist: Panelist, now: datetime) -> list[tuple[int, str]]:
    """(id, ref) of the answers this panelist may still change, newest first: their last CHANGE_LAST
    answered items (skips excluded: their slot went back to the pool), each within CHANGE_WITHIN."""
    return list(
        Assignment.objects.filter(panelist=panelist, status=AssignmentStatus.DONE, answered_at__gte=now - CHANGE_WITHIN)
        .order_by("-answered_at", "-id").values_list("id", "ref")[:CHANGE_LAST]
    )


def panelist_changeable(*, panelist: Panelist, now: datetime) -> list[int]:
    """Ids of the answers this panelist may still change (see panelist_changeable_refs)."""
    return [pk for pk, _ in panelist_changeable_refs(panelist=panelist, now=now)]


def assignment_answers(*, assignment: Assignment) -> dict[str, int]:
    """The saved scores of an assignment as the page names them ("<side>-<criterion key>")."""
    return {f"{side}-{key}": score for side, key, score in
            Rating.objects.filter(assignment=assignment).values_list("side", "criterion__key", "score")}


def assignment_id_by_ref(*, panelist: Panelist, ref: str) -> int:
    """The answer behind a panelist URL's opaque ref (Assignment.ref); 0, which matches nothing, if none."""
    rows = list(Assignment.objects.filter(panelist=panelist, ref=ref).values_list("pk", flat=True)[:1])
    return rows[0] if rows else 0


def assignment_for_panelist(*, panelist: Panelist, assignment_id: int) -> Assignment | None:
    return (
        Assignment.objects.select_related("left", "right", "shown_prompt")
        .filter(pk=assignment_id, panelist=panelist)
        .first()
    )


def panelist_open_image(*, token: str, public_id: str) -> tuple[str, str, int, int] | None:
    """(stored file name, image format, canvas width, canvas height) of an image, only while it is in this panelist's open item
    (or in an answer they may still change).

    One query (in SQL: the ORM took longer to build it than the database to run it, and every
    item loads one or two images): a revoked link, someone else's image or an answered item
    all come back empty.
    """
    sql = (
        f"SELECT g.image, sw.image_format, sw.canvas_width, sw.canvas_height FROM {Panelist._meta.db_table} p "
        f"JOIN {Assignment._meta.db_table} a ON a.panelist_id = p.id "
        f"JOIN {Generation._meta.db_table} g ON (g.id = a.left_id OR g.id = a.right_id) "
        f"JOIN {Study._meta.db_table} s ON s.id = a.study_id "
        f"JOIN {Sweep._meta.db_table} sw ON sw.id = s.sweep_id "
        "WHERE p.token = %s AND p.revoked_at IS NULL AND g.public_id = %s"
        " AND (a.status = %s OR (a.status = %s AND a.answered_at >= %s)) LIMIT 1"
    )
    recent = timezone.now() - CHANGE_WITHIN  # answers the panelist may still change ("previous")
    with connection.cursor() as cursor:
        cursor.execute(sql, [token, public_id, AssignmentStatus.OPEN.value, AssignmentStatus.DONE.value, recent])
        row = cursor.fetchone()
    return (row[0], row[1], row[2], row[3]) if row and row[0] else None


# --- staff dashboard ------------------------------------------------------------


def study_progress(*, study: Study) -> dict:
    """How far the rating is: items at their k, ratings, panelists; complete when every item has k."""
    rows = (
        StudyItem.objects.filter(study=study)
        .values("kind")
        .annotate(
            items=Count("id"),
            complete=Count("id", filter=Q(n_done__gte=F("target"))),
            done=Sum("n_done"),
            target=Sum("target"),
            in_progress=Sum("n_assigned") - Sum("n_done"),
        )
        .order_by("kind")
    )
    kinds = {r["kind"]: r for r in rows}
    items = sum(r["items"] for r in kinds.values())
    complete_items = sum(r["complete"] for r in kinds.values())
    done = sum(r["done"] or 0 for r in kinds.values())
    target = sum(r["target"] or 0 for r in kinds.values())
    assignment_counts = Assignment.objects.filter(study=study).aggregate(
        gold=Count("id", filter=Q(is_gold=True, status=AssignmentStatus.DONE)),
        skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
        expired=Count("id", filter=Q(status=AssignmentStatus.EXPIRED)),
        open=Count("id", filter=Q(status=AssignmentStatus.OPEN)),
    )
    return {
        "kinds": kinds,
        "items": items,
        "complete_items": complete_items,
        "assignments_done": done,
        "assignments_target": target,
        "percent": round(100.0 * done / target, 1) if target else 0.0,
        "complete": items > 0 and complete_items == items,
        "ratings": Rating.objects.filter(study=study).count(),
        "panelists": Panelist.objects.filter(study=study).count(),
        **assignment_counts,
    }


def study_sweep_progress(*, study: Study) -> list[dict]:
    """Per-model render progress of the study's sweep (generation's selector)."""
    return list(sweep_progress(sweep=study.sweep))


# --------------------------------------------------------------------------- active assignment input


ACTIVE_SUMS_SECONDS = 5  # the active strategy may use sums up to this old (one query per 5 s, not per request)


@dataclass(frozen=True)
class ModelRatingSums:
    model_ids: list[int]
    criterion_ids: list[int]
    prompt_ids: list[int]
    # (model, criterion, prompt) -> (n, sum, sum of squares)
    cells: dict[tuple[int, int, int], tuple[int, float, float]]


def model_rating_sums(*, study: Study) -> ModelRatingSums:
    """n, sum and sum of squares per model × criterion × prompt: what the active strategy needs.

    One GROUP BY (non-gold ratings of panelists not excluded), cached for a few seconds.
    """
    key = f"results:active-sums:{study.pk}"
    hit = cache.get(key)
    if hit is not None:
        return hit
    rows = (
        Rating.objects.filter(study=study, assignment__is_gold=False, panelist__excluded=False)
        .values("generation__model_id", "criterion_id", "generation__prompt_id")
        .annotate(n=Count("id"), s=Coalesce(Sum("score"), 0), s2=Coalesce(Sum(F("score") * F("score")), 0))
        .order_by()
    )
    cells = {(r["generation__model_id"], r["criterion_id"], r["generation__prompt_id"]):
             (r["n"], float(r["s"]), float(r["s2"])) for r in rows}
    sums = ModelRatingSums(
        model_ids=sorted({c[0] for c in cells}), criterion_ids=sorted({c[1] for c in cells}),
        prompt_ids=sorted({c[2] for c in cells}), cells=cells,
    )
    cache.set(key, sums, ACTIVE_SUMS_SECONDS)
    return sums
