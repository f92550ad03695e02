"""Sweeps: every prompt of a suite × every model × every seed, rendered by GPU workers.

All Generation rows are created up front (unique per sweep × prompt × model × seed), then
model-major chunks are enqueued after commit, so a worker loads a model once and renders
many prompts with it. Workers heartbeat the images they hold while they make progress
(``liveness``); ``sweep_reconcile`` re-enqueues images whose worker died, and chunks that a
worker received but died before claiming (with Redis and late acks the broker would only
redeliver after the visibility timeout, hours later; the filesystem broker never would).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from evalsite.errors import ServiceError
from generation.models import Backend, Generation, GenerationStatus, ImageFormat, ImageModel, Sweep, SweepStatus
from prompts.models import Prompt, PromptSuite

logger = logging.getLogger(__name__)

UNFINISHED = (GenerationStatus.PENDING, GenerationStatus.RUNNING)


class SweepInvalid(ServiceError):
    """A sweep can't be created as asked; ``messages`` lists every problem."""


def _check_sweep_input(
    *, suite: PromptSuite, image_models: Sequence[ImageModel], seeds: Sequence[int],
    canvas_width: int, canvas_height: int, image_format: str,
) -> None:
    errors: list[str] = []
    if not suite.prompts.exists():
        errors.append(f"Suite {suite.name!r} has no prompts.")
    if not image_models:
        errors.append("Choose at least one model.")
    disabled = [m.slug for m in image_models if not m.enabled]
    if disabled:
        errors.append(f"Disabled models can't render: {', '.join(disabled)}.")
    if not seeds:
        errors.append("Give at least one seed.")
    elif len(set(seeds)) != len(seeds):
        errors.append("Seeds must be distinct.")
    elif any(not isinstance(s, int) or s < 0 or s >= 2**63 for s in seeds):
        errors.append("Seeds must be integers from 0 to 2^63-1.")
    for label, value in (("width", canvas_width), ("height", canvas_height)):
        if not isinstance(value, int) or value < 8 or value > 8192 or value % 8:
            errors.append(f"Canvas {label} must be a multiple of 8 between 8 and 8192, not {value}.")
    if image_format not in ImageFormat.values:
        errors.append(f"Image format must be one of {', '.join(ImageFormat.values)}, not {image_format!r}.")
    if errors:
        raise SweepInvalid("; ".join(errors), messages=errors)


DEFAULT_CANVAS = 1024


def sweep_canvas_default(*, image_models: Iterable[ImageModel]) -> tuple[int, int]:
    """1024² or the largest native size of the models, whichever is larger (a smaller canvas only when
    chosen explicitly: tiny models' 40 px images must not be blown up for panelists)."""
    models = list(image_models)
    return (max([DEFAULT_CANVAS, *(m.width for m in models)]), max([DEFAULT_CANVAS, *(m.height for m in models)]))


def sweep_prompts_select(
    *, suite: PromptSuite, categories: Sequence[str] = (), sample: int | None = None, sample_seed: int | None = None
) -> list[Prompt]:
    """The prompts a sweep renders: those of the chosen categories (all when none), then a random subset of
    ``sample`` of them (reproducible from ``sample_seed``), in suite order."""
    prompts = suite.prompts.order_by("position")
    if categories:
        prompts = prompts.filter(category__in=list(categories))
    chosen = list(prompts.only("pk", "position", "category"))
    if sample is not None and sample < len(chosen):
        rng = random.Random(sample_seed if sample_seed is not None else 0)
        keep = set(rng.sample(range(len(chosen)), sample))
        chosen = [p for i, p in enumerate(chosen) if i in keep]
    return chosen


def sweep_create(
    *,
    suite: PromptSuite,
    image_models: Iterable[ImageModel],
    seeds: Sequence[int] | int,
    canvas_width: int | None = None,
    canvas_height: int | None = None,
    image_format: str = ImageFormat.PNG,
    created_by=None,
    name: str = "",
    categories: Sequence[str] = (),
    sample: int | None = None,
    sample_seed: int | None = None,
) -> Sweep:
    """Create the sweep and all its Generation rows; enqueue the chunks once committed.

    ``seeds`` is a list of seeds or a count (seeds 0..N-1). The canvas defaults to
    sweep_canvas_default: every image of a sweep gets one size (blindness). ``categories`` and
    ``sample`` narrow the suite's prompts (sweep_prompts_select).
    """
    models = sorted({m.pk: m for m in image_models}.values(), key=lambda m: (m.name, m.pk))
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    default_width, default_height = sweep_canvas_default(image_models=models)
    canvas_width = canvas_width or default_width
    canvas_height = canvas_height or default_height
    _check_sweep_input(
        suite=suite, image_models=models, seeds=seed_list, canvas_width=canvas_width,
        canvas_height=canvas_height, image_format=image_format,
    )
    categories = sorted(set(categories))
    if sample is not None and sample < 1:
        raise SweepInvalid("A random subset needs at least one prompt.")
    if sample is not None and sample_seed is None:
        sample_seed = random.SystemRandom().randrange(2**31)
    prompts = sweep_prompts_select(suite=suite, categories=categories, sample=sample, sample_seed=sample_seed)
    if not prompts:
        raise SweepInvalid(f"No prompt of suite {suite.name!r} is in the categories {', '.join(categories)}.")
    imported = [m.slug for m in models if m.backend == Backend.IMPORTED]
    if imported:
        raise SweepInvalid(f"Imported models are not rendered by workers: {', '.join(imported)}.")
    with transaction.atomic():
        sweep = Sweep.objects.create(
            name=name or f"{suite.name} × {len(models)} models × {len(seed_list)} seeds",
            suite=suite, seeds=seed_list, canvas_width=canvas_width, canvas_height=canvas_height,
            image_format=image_format, created_by=created_by, prompt_categories=categories,
            prompt_sample=sample, prompt_sample_seed=sample_seed if sample is not None else None,
        )
        sweep.image_models.set(models)
        Generation.objects.bulk_create(
            [
                Generation(sweep=sweep, prompt=prompt, model=model, seed=seed)
                for model in models for prompt in prompts for seed in seed_list
            ],
            batch_size=2000,
        )
        transaction.on_commit(lambda: sweep_enqueue(sweep=sweep))
    return sweep


def sweep_cancel(*, sweep: Sweep) -> int:
    """Cancel a sweep: its pending images are cancelled (no worker claims them), running ones finish.

    Returns how many images were cancelled. A finished sweep is left as it is (0).
    """
    now = timezone.now()
    with transaction.atomic():
        locked = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if locked.status not in (SweepStatus.PENDING, SweepStatus.RUNNING):
            return 0
        cancelled = locked.generations.filter(status=GenerationStatus.PENDING).update(
            status=GenerationStatus.CANCELLED, finished_at=now, error="cancelled before it was rendered",
        )
        Sweep.objects.filter(pk=sweep.pk).update(status=SweepStatus.CANCELLED, cancelled_at=now, finished_at=now)
    sweep.refresh_from_db(fields=["status", "cancelled_at", "finished_at"])
    logger.info("sweep %s cancelled: %d pending images cancelled", sweep.pk, cancelled)
    return cancelled


def render_chunks(*, generations: Iterable[Generation]) -> list[tuple[int, list[int]]]:
    """Model-major chunks: (model_id, generation ids) with up to RENDER_CHUNK_SIZE prompts each
    (all seeds of a prompt stay together). Input must be ordered by model, prompt, seed."""
    size = max(1, settings.RENDER_CHUNK_SIZE)
    chunks: list[tuple[int, list[int]]] = []
    for model_id, rows in groupby(generations, key=lambda g: g.model_id):
        by_prompt = [[g.pk for g in group] for _, group in groupby(rows, key=lambda g: g.prompt_id)]
        for start in range(0, len(by_prompt), size):
            chunks.append((model_id, [pk for ids in by_prompt[start:start + size] for pk in ids]))
    return chunks


def sweep_enqueue(*, sweep: Sweep, generation_ids: Iterable[int] | None = None) -> int:
    """Send the sweep's pending images to the GPU queue, model by model. Returns the chunk count.

    Safe to call again: a chunk skips images that are done or held by a live worker.
    """
    # Not at the top: generation.tasks imports these services (a task only calls a service), so a
    # module-level import here would be a cycle; the task is looked up when a sweep is enqueued.
    from generation.tasks import render_chunk

    rows = sweep.generations.filter(status=GenerationStatus.PENDING)
    if generation_ids is not None:
        rows = rows.filter(pk__in=list(generation_ids))
    rows = rows.order_by("model__name", "model_id", "prompt__position", "prompt_id", "seed").only(
        "pk", "model_id", "prompt_id"
    )
    chunks = render_chunks(generations=rows)
    for model_id, ids in chunks:
        # stamped before the send, one time per chunk (the queue's order): see _unclaimed
        Generation.objects.filter(pk__in=ids, status=GenerationStatus.PENDING).update(enqueued_at=timezone.now())
        render_chunk.apply_async(kwargs={"sweep_id": sweep.pk, "model_id": model_id, "generation_ids": ids})
    logger.info("sweep %s: enqueued %d chunks", sweep.pk, len(chunks))
    return len(chunks)


def sweep_status_refresh(*, sweep: Sweep) -> str:
    """Derive the sweep's status from its images (running until none is pending or running)."""
    counts = dict(sweep.generations.values_list("status").annotate(n=Count("pk")).order_by())
    unfinished = counts.get(GenerationStatus.PENDING, 0) + counts.get(GenerationStatus.RUNNING, 0)
    touched = sum(counts.values()) - counts.get(GenerationStatus.PENDING, 0)
    now = timezone.now()
    fields: dict = {}
    if unfinished == 0:
        fields["status"] = SweepStatus.FAILED if counts.get(GenerationStatus.FAILED) else SweepStatus.DONE
        fields["finished_at"] = now
    elif touched:
        fields["status"] = SweepStatus.RUNNING
        fields["finished_at"] = None
    else:
        fields["status"] = SweepStatus.PENDING
    query = Sweep.objects.filter(pk=sweep.pk).exclude(status=SweepStatus.CANCELLED)
    if fields["status"] != SweepStatus.PENDING:
        query.filter(started_at__isnull=True).update(started_at=now)
    if fields["status"] in (SweepStatus.DONE, SweepStatus.FAILED):
        query = query.exclude(status=fields["status"])  # keep the first finish time
    query.update(**fields)
    sweep.refresh_from_db(fields=["status", "started_at", "finished_at"])
    return sweep.status


def sweep_retry_failed(*, sweep: Sweep, image_model: ImageModel | None = None) -> int:
    """Send a sweep's failed images back to the workers (e.g. after fixing a model's path).

    Their attempts start again from zero; images already done are never touched.
    """
    with transaction.atomic():
        failed = sweep.generations.select_for_update().filter(status=GenerationStatus.FAILED)
        if image_model is not None:
            failed = failed.filter(model=image_model)
        ids = list(failed.values_list("pk", flat=True))
        if not ids:
            return 0
        Generation.objects.filter(pk__in=ids).update(
            status=GenerationStatus.PENDING, attempts=0, error="", finished_at=None, started_at=None,
            heartbeat_at=None, worker="", fallback_used=None,
        )
        Sweep.objects.filter(pk=sweep.pk).update(status=SweepStatus.RUNNING, finished_at=None)
        transaction.on_commit(lambda: sweep_enqueue(sweep=sweep, generation_ids=ids))
    return len(ids)


def _lost(now: datetime) -> Q:
    stale = now - timedelta(seconds=settings.RENDER_STALE_SECONDS)
    return Q(status=GenerationStatus.RUNNING) & (Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))


def _queue_passed(now: datetime) -> datetime | None:
    """The latest send time of a chunk that some worker has claimed: the queue (FIFO) has moved past
    every chunk sent before it."""
    return Generation.objects.filter(
        sweep__status__in=(SweepStatus.PENDING, SweepStatus.RUNNING), started_at__isnull=False,
        enqueued_at__isnull=False,
    ).exclude(status=GenerationStatus.PENDING).aggregate(latest=Max("enqueued_at"))["latest"]


def _unclaimed(*, sweep: Sweep, now: datetime, idle_since: datetime | None) -> list[int]:
    """Pending images whose chunk was sent more than RENDER_CLAIM_TIMEOUT_SECONDS ago and that a worker
    must have received and lost (killed between receiving and claiming): a chunk sent later was
    claimed, or the calling worker has sat idle (an empty queue) that long since it was sent."""
    cutoff = now - timedelta(seconds=settings.RENDER_CLAIM_TIMEOUT_SECONDS)
    rows = sweep.generations.filter(status=GenerationStatus.PENDING, enqueued_at__lt=cutoff)
    if idle_since is None or idle_since >= cutoff:
        passed = _queue_passed(now)
        if passed is None:
            return []
        rows = rows.filter(enqueued_at__lt=passed)
    return list(rows.values_list("pk", flat=True))


def sweep_reconcile(*, sweep: Sweep, now: datetime | None = None, idle_since: datetime | None = None) -> int:
    """Re-enqueue images held by a worker that stopped heartbeating (killed, lost, hung), and
    images whose chunk a worker received but never claimed (see _unclaimed; ``idle_since`` is
    when the calling worker last finished a chunk, None when the caller is no worker).

    Returns how many images were re-enqueued. Images already attempted
    RENDER_MAX_ATTEMPTS times are failed instead. Bounded: an image of a dead worker is back
    in the queue within RENDER_STALE_SECONDS plus one reconcile period; a lost chunk within
    RENDER_CLAIM_TIMEOUT_SECONDS plus one period once the queue moved past it. Claims are
    idempotent, so a late original of a re-sent chunk renders nothing twice.
    """
    now = now or timezone.now()
    return _unclaimed_reconcile(sweep=sweep, now=now, idle_since=idle_since) + _lost_reconcile(sweep=sweep, now=now)


def _unclaimed_reconcile(*, sweep: Sweep, now: datetime, idle_since: datetime | None) -> int:
    candidates = _unclaimed(sweep=sweep, now=now, idle_since=idle_since)
    if not candidates:
        return 0
    cutoff = now - timedelta(seconds=settings.RENDER_CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        ids = list(Generation.objects.select_for_update().filter(
            pk__in=candidates, status=GenerationStatus.PENDING, enqueued_at__lt=cutoff,
        ).values_list("pk", flat=True))
        Generation.objects.filter(pk__in=ids).update(enqueued_at=now)  # a concurrent reconcile skips them
        transaction.on_commit(lambda: sweep_enqueue(sweep=sweep, generation_ids=ids))
    logger.warning("sweep %s: %d images whose chunk was sent over %.0f s ago and never claimed re-enqueued",
                   sweep.pk, len(ids), settings.RENDER_CLAIM_TIMEOUT_SECONDS)
    return len(ids)


def _lost_reconcile(*, sweep: Sweep, now: datetime) -> int:
    cap = settings.RENDER_MAX_ATTEMPTS
    with transaction.atomic():
        lost = list(
            sweep.generations.select_for_update().filter(_lost(now)).values_list("pk", "attempts", "worker")
        )
        if not lost:
            return 0
        give_up = [pk for pk, attempts, _ in lost if attempts >= cap]
        retry = [pk for pk, attempts, _ in lost if attempts < cap]
        if give_up:
            Generation.objects.filter(pk__in=give_up).update(
                status=GenerationStatus.FAILED, finished_at=now, heartbeat_at=None,
                error=f"gave up after {cap} attempts: the worker rendering this image was lost each time",
            )
        if retry:
            Generation.objects.filter(pk__in=retry).update(status=GenerationStatus.PENDING, heartbeat_at=None)
            transaction.on_commit(lambda: sweep_enqueue(sweep=sweep, generation_ids=retry))
        workers = sorted({w for _, _, w in lost})
    logger.warning(
        "sweep %s: %d images of lost workers %s re-enqueued, %d failed after %d attempts",
        sweep.pk, len(retry), ", ".join(workers), len(give_up), cap,
    )
    sweep_status_refresh(sweep=sweep)
    return len(retry)


def sweeps_reconcile(*, now: datetime | None = None, idle_since: datetime | None = None) -> int:
    """Reconcile every unfinished sweep (run by each worker on start and periodically)."""
    total = 0
    for sweep in Sweep.objects.filter(status__in=(SweepStatus.PENDING, SweepStatus.RUNNING)):
        total += sweep_reconcile(sweep=sweep, now=now, idle_since=idle_since)
    return total
