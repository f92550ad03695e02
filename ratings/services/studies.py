"""Creating, opening and closing studies; keeping their items in step with the sweep."""

from __future__ import annotations

import itertools
import secrets
from collections import defaultdict

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from generation.models import Generation, GenerationStatus, Sweep

from ..models import (
    AssignmentKind,
    Criterion,
    Study,
    StudyItem,
    StudyMode,
    StudyStatus,
)
from ..selectors import study_criteria_forget
from ..signals import results_inputs_changed_on_commit
from .errors import StudySetupError
from .pool import assignments_expire

DEFAULT_CRITERIA: tuple[dict, ...] = (
    {
        "key": "prompt_accuracy",
        "name": "Prompt accuracy",
        "question": "How well does the image show everything the prompt asks for (objects, counts, colours, positions)?",
        "categories": [],
        "text_prompts_only": False,
    },
    {
        "key": "photorealism",
        "name": "Photorealism",
        "question": "How real does the image look: natural lighting, anatomy and textures, no visible artefacts?",
        "categories": [],
        "text_prompts_only": False,
    },
    {
        "key": "text_rendering",
        "name": "Text rendering",
        "question": "Is the requested text written correctly and legibly (spelling, every character, no extra text)?",
        "categories": ["Text", "Writing & Symbols", "Text rendering", "Typography"],
        "text_prompts_only": True,
    },
)


def study_create(
    *,
    sweep: Sweep,
    name: str,
    mode: str = StudyMode.BOTH,
    ratings_per_item: int = 3,
    gold_enabled: bool = True,
    instructions: str = "",
    criteria: list[dict] | None = None,
    created_by=None,
    items_per_panelist: int = 0,
) -> Study:
    """A draft study over a sweep with the default criteria (or the given ones)."""
    name = (name or "").strip()
    if not name:
        raise StudySetupError("A study needs a name.")
    if mode not in StudyMode.values:
        raise StudySetupError(f"Unknown mode {mode!r}; choose one of {', '.join(StudyMode.values)}.")
    if not isinstance(ratings_per_item, int) or ratings_per_item < 1:
        raise StudySetupError("Ratings per image must be a whole number of at least 1.")
    if sweep.status in ("done", "failed", "cancelled") and not sweep.generations.filter(
        status=GenerationStatus.DONE
    ).exists():
        raise StudySetupError("This sweep has no rendered or imported image: there is nothing to rate.")
    if mode in (StudyMode.PAIR, StudyMode.BOTH) and sweep.image_models.count() < 2:
        raise StudySetupError("Pairs need a sweep with at least two models; use --mode single.")
    specs = list(criteria) if criteria is not None else [dict(c) for c in DEFAULT_CRITERIA]
    if not specs:
        raise StudySetupError("A study needs at least one criterion.")
    keys = [c["key"] for c in specs]
    if len(set(keys)) != len(keys):
        raise StudySetupError("Criterion keys must be unique within a study.")
    with transaction.atomic():
        study = Study.objects.create(
            sweep=sweep,
            name=name,
            mode=mode,
            ratings_per_item=ratings_per_item,
            gold_enabled=gold_enabled,
            instructions=instructions,
            created_by=created_by,
            items_per_panelist=max(int(items_per_panelist or 0), 0),
        )
        Criterion.objects.bulk_create(
            Criterion(
                study=study,
                key=c["key"],
                name=c.get("name") or c["key"].replace("_", " ").capitalize(),
                question=c.get("question") or "",
                categories=list(c.get("categories") or []),
                text_prompts_only=bool(c.get("text_prompts_only", False)),
                order=i,
            )
            for i, c in enumerate(specs)
        )
        study_items_sync(study=study)
    return study


def study_default_criteria_ensure(*, study: Study) -> None:
    """A study made in the admin without criteria gets the defaults."""
    if study.criteria.exists():
        return
    Criterion.objects.bulk_create(
        Criterion(study=study, order=i, **{k: v for k, v in c.items()}) for i, c in enumerate(DEFAULT_CRITERIA)
    )


def study_items_sync(*, study: Study) -> int:
    """Make an item for every rendered image (singles) and every model pair of one prompt and seed.

    Idempotent and safe to run concurrently (conflicts are ignored); called when a study is
    created, opened or saved in the admin, and (ratings.tasks, enqueued after commit) when
    images of its sweep finish rendering or are imported: never on a GET. Also carries a
    changed k over to the items (never below what is already assigned). Returns the number of
    new items.
    """
    gens = list(
        Generation.objects.filter(sweep_id=study.sweep_id, status=GenerationStatus.DONE)
        .exclude(image="")
        .values_list("id", "prompt_id", "model_id", "seed")
    )
    existing = set(StudyItem.objects.filter(study=study).values_list("kind", "first_id", "second_id"))
    k = study.ratings_per_item
    new: list[StudyItem] = []
    if study.mode in (StudyMode.SINGLE, StudyMode.BOTH):
        for gid, prompt_id, model_id, _seed in gens:
            if (AssignmentKind.SINGLE, gid, None) not in existing:
                new.append(StudyItem(study=study, kind=AssignmentKind.SINGLE, first_id=gid, prompt_id=prompt_id,
                                     model_pair=str(model_id), target=k))
    if study.mode in (StudyMode.PAIR, StudyMode.BOTH):
        groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for gid, prompt_id, model_id, seed in gens:
            groups[(prompt_id, seed)].append((gid, model_id))
        for (prompt_id, _seed), members in groups.items():
            for (g1, m1), (g2, m2) in itertools.combinations(sorted(members), 2):
                if m1 == m2 or (AssignmentKind.PAIR, g1, g2) in existing:
                    continue
                lo, hi = sorted((m1, m2))
                new.append(StudyItem(study=study, kind=AssignmentKind.PAIR, first_id=g1, second_id=g2,
                                     prompt_id=prompt_id, model_pair=f"{lo}-{hi}", target=k))
    if new:
        StudyItem.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
    StudyItem.objects.filter(study=study).exclude(target=k).update(target=Greatest(k, F("n_assigned")))
    return len(new)


def studies_items_sync_for_sweep(*, sweep_id: int) -> int:
    """Items for new images in every study over this sweep that is not closed; the number of new items."""
    return sum(study_items_sync(study=study)
               for study in Study.objects.filter(sweep_id=sweep_id).exclude(status=StudyStatus.CLOSED))


def study_open(*, study: Study) -> Study:
    """Open for rating; needs at least one rendered image (an imported study has none)."""
    if study.imported_from:
        raise StudySetupError("This study holds ratings imported from elsewhere; it has no images to rate.")
    study_items_sync(study=study)
    if not StudyItem.objects.filter(study=study).exists():
        raise StudySetupError("Nothing to rate yet: the sweep has no rendered images for this study's mode.")
    study.status = StudyStatus.OPEN
    study.save(update_fields=["status"])
    return study


def study_close(*, study: Study) -> Study:
    """Close: no new assignments or answers; open assignments give their slots back."""
    with transaction.atomic():
        study.status = StudyStatus.CLOSED
        study.save(update_fields=["status"])
        assignments_expire(study=study, now=timezone.now(), everything=True)
    return study


def study_share_enable(*, study: Study) -> str:
    """A shared link (/r/<share_token>/) that mints a panelist for each new visitor."""
    if not study.share_token:
        study.share_token = "s" + secrets.token_urlsafe(24)
        study.save(update_fields=["share_token"])
    return study.share_token


def study_share_disable(*, study: Study) -> None:
    study.share_token = None
    study.save(update_fields=["share_token"])



def criterion_save(
    *,
    study: Study,
    key: str,
    name: str,
    question: str,
    categories: list[str] | None = None,
    text_prompts_only: bool = False,
) -> Criterion:
    """Add a criterion, or change the wording and categories of an existing one (by key)."""
    key = (key or "").strip().lower()
    if not key or not key.replace("_", "").replace("-", "").isalnum():
        raise StudySetupError("A criterion key uses letters, digits, '-' and '_' only (e.g. aesthetics).")
    if not (name or "").strip() or not (question or "").strip():
        raise StudySetupError("A criterion needs a name and a question.")
    cats = [c.strip() for c in (categories or []) if c and c.strip()]
    order = (study.criteria.order_by("-order").values_list("order", flat=True).first() or 0) + 1
    criterion, _ = Criterion.objects.update_or_create(
        study=study,
        key=key,
        defaults={"name": name.strip()[:100], "question": question.strip()[:300], "categories": cats,
                  "text_prompts_only": bool(text_prompts_only)},
        create_defaults={"name": name.strip()[:100], "question": question.strip()[:300], "categories": cats,
                         "text_prompts_only": bool(text_prompts_only), "order": order},
    )
    study_criteria_forget(study=study)
    results_inputs_changed_on_commit(study_id=study.pk, reason="criteria")
    return criterion
