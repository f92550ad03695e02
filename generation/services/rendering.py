"""Rendering a chunk of one sweep's images with one model, on a worker.

One Engine per worker process (created on the first chunk, so CUDA is initialised only
inside the solo-pool worker, never before a fork). Each image is saved the moment it is
rendered, so a killed worker loses at most the image it was working on.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from PIL import Image

from generation.engine import LoadError, OutOfMemory
from generation.engine.normalize import EXTENSIONS, normalize_image
from generation.engine.ocr import TextCheck, text_check
from generation.engine.spec import ModelSpec, RenderOutcome, RenderRequest
from generation.models import Generation, GenerationStatus, ImageModel, Sweep, generation_upload_to
from generation.signals import sweep_images_added

from .liveness import model_seconds_measured, worker_liveness
from .sweeps import sweep_status_refresh

if TYPE_CHECKING:
    from generation.engine import Engine

logger = logging.getLogger(__name__)

_engine: Engine | None = None
_engine_lock = threading.Lock()
_environment: dict[str, Any] | None = None


def worker_name() -> str:
    """hostname:pid — unique per live worker process (the solo pool renders in the main process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def engine_get() -> Engine:
    """The one Engine of this process, created lazily on the first chunk."""
    global _engine
    with _engine_lock:
        if _engine is None:
            # Only here: the Engine module imports torch, which only a worker may load (the web process
            # imports this module too, for the services it shares with the worker).
            from generation.engine import Engine

            budget = settings.GPU_VRAM_BUDGET_GB
            cap = worker_memory_cap_bytes()
            _engine = Engine(vram_budget_bytes=int(budget * 2**30) if budget else None, memory_cap_bytes=cap,
                             memory_ceiling_bytes=cap)
            if cap and _engine.memory_cap_bytes is None:
                logger.warning("EVALSITE_GPU_MEMORY_GIB=%s: no GPU memory cap applies on %s", settings.GPU_MEMORY_GIB,
                               _engine.device)
        return _engine


def engine_models_release() -> None:
    """Give back what this worker's Engine holds on the GPU (before another job needs the card); no-op without one."""
    with _engine_lock:
        engine = _engine
    if engine is not None:
        engine.evict_all()


def worker_memory_cap_bytes() -> int | None:
    """EVALSITE_GPU_MEMORY_GIB in bytes: what this worker's engines may allocate on the GPU (None = the whole card)."""
    gib = settings.GPU_MEMORY_GIB
    return int(gib * 2**30) if gib else None


def image_model_spec(*, model: ImageModel) -> ModelSpec:
    return ModelSpec(
        slug=model.slug,
        source=model.source,
        backend=model.backend,
        pipeline_class=model.pipeline_class,
        revision=model.revision,
        dtype=model.dtype,
        quantization=model.quantization,
        offload=model.offload,
        num_inference_steps=model.num_inference_steps,
        guidance_scale=model.guidance_scale,
        width=model.width,
        height=model.height,
        extra_params=dict(model.extra_params or {}),
        load_params={**(model.load_params or {}), **({"trust_remote_code": True} if model.trust_remote_code else {})},
        fast_mode=model.fast_mode,
    )


@dataclass
class ChunkResult:
    """What a chunk did, for logs and tests."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    discarded: int = 0  # rendered, but another worker had already saved the image
    errors: list[str] = field(default_factory=list)


def generations_claim(*, generation_ids: list[int], worker: str, now: datetime | None = None) -> list[Generation]:
    """Take the still-pending images of a chunk for this worker (atomic: no two workers get one).

    Every claim counts as an attempt; an image claimed more than RENDER_MAX_ATTEMPTS times
    (its workers kept dying) is failed instead of being rendered again.
    """
    now = now or timezone.now()
    with transaction.atomic():
        Generation.objects.filter(pk__in=generation_ids, status=GenerationStatus.PENDING).update(
            status=GenerationStatus.RUNNING, worker=worker, attempts=F("attempts") + 1,
            started_at=now, heartbeat_at=now, error="",
        )
        claimed = list(
            Generation.objects.filter(pk__in=generation_ids, status=GenerationStatus.RUNNING, worker=worker)
            .select_related("prompt")
            .order_by("prompt__position", "seed", "pk")
        )
    cap = settings.RENDER_MAX_ATTEMPTS
    over = [g for g in claimed if g.attempts > cap]
    for generation in over:
        generation_fail(
            generation_id=generation.pk,
            error=f"gave up after {cap} attempts: the worker rendering this image was lost each time",
        )
    return [g for g in claimed if g.attempts <= cap]


def generations_abandon(*, generation_ids: list[int], worker: str) -> int:
    """Mark images this worker holds as lost now (no heartbeat), so the next reconcile re-enqueues
    them at once instead of waiting for the heartbeat to go stale (used on shutdown)."""
    return Generation.objects.filter(pk__in=generation_ids, status=GenerationStatus.RUNNING, worker=worker).update(
        heartbeat_at=None
    )


def generation_fail(*, generation_id: int, error: str) -> bool:
    """Mark one image failed unless it is already done (a late duplicate must not undo it)."""
    updated = (
        Generation.objects.filter(pk=generation_id)
        .exclude(status=GenerationStatus.DONE)
        .update(status=GenerationStatus.FAILED, error=error[:4000], finished_at=timezone.now(), heartbeat_at=None)
    )
    return bool(updated)


def _extension(fmt: str) -> str:
    return EXTENSIONS[fmt]


def image_encode(*, outcome: RenderOutcome, sweep: Sweep) -> tuple[bytes | None, str]:
    """The outcome's image normalised for blindness (sweep canvas and format), or why not."""
    if outcome.error:
        return None, outcome.error
    if outcome.image is None:
        return None, "the model returned no image"
    try:
        return normalize_image(
            outcome.image, width=sweep.canvas_width, height=sweep.canvas_height, fmt=sweep.image_format
        ), ""
    except Exception as exc:  # noqa: BLE001 - one bad image fails itself, not the chunk
        return None, f"could not normalise the image: {type(exc).__name__}: {exc}"


def image_encode_and_check(
    *, outcome: RenderOutcome, sweep: Sweep, expected_text: str, language: str
) -> tuple[tuple[bytes | None, str], TextCheck | None]:
    """image_encode, then OCR of the encoded image (what panelists see) when the prompt asks for text.

    Runs on the encoding thread, beside the next render; an OCR failure is recorded, never fatal."""
    encoded = image_encode(outcome=outcome, sweep=sweep)
    if not expected_text or encoded[0] is None:
        return encoded, None
    return encoded, text_check(Image.open(io.BytesIO(encoded[0])), expected=expected_text, language=language)


def generation_ocr_fields(*, check: TextCheck | None) -> dict[str, Any]:
    """The Generation fields of one text check (empty when the prompt asks for no text)."""
    if check is None:
        return {}
    return {"ocr_text": check.recognised[:4000], "ocr_cer": check.cer, "ocr_all_words": check.all_words,
            "ocr_languages": check.languages, "ocr_error": check.error}


def generation_save_outcome(
    *,
    generation_id: int,
    sweep: Sweep,
    outcome: RenderOutcome,
    worker: str,
    settings_snapshot: dict[str, Any],
    fallback: ImageModel | None = None,
    encoded: tuple[bytes | None, str] | None = None,
    text: TextCheck | None = None,
) -> str:
    """Store one rendered image, normalised for blindness, under the Generation's opaque name.

    ``encoded`` is image_encode's answer when the caller already has it. Returns "done",
    "failed" or "discarded" (the image was already saved by another worker: the first
    result wins and nothing is written twice).
    """
    data, error = encoded if encoded is not None else image_encode(outcome=outcome, sweep=sweep)
    now = timezone.now()
    with transaction.atomic():
        generation = Generation.objects.select_for_update().get(pk=generation_id)
        if generation.status == GenerationStatus.DONE:
            return "discarded"
        generation.worker = worker
        generation.seconds = outcome.seconds
        generation.peak_vram_allocated = outcome.peak_vram_allocated
        generation.peak_vram_reserved = outcome.peak_vram_reserved
        generation.device = outcome.device
        generation.gpu_name = outcome.gpu_name
        generation.offload_used = outcome.offload_used or ""
        generation.fast_mode = bool(getattr(outcome, "fast_mode_used", False))
        generation.native_width = outcome.native_width
        generation.native_height = outcome.native_height
        generation.fallback_used = fallback
        generation.settings_snapshot = settings_snapshot
        generation.finished_at = now
        generation.heartbeat_at = None
        if error:
            generation.status = GenerationStatus.FAILED
            generation.error = error[:4000]
        else:
            ext = _extension(sweep.image_format)
            name = generation_upload_to(generation, f"image.{ext}")
            storage = generation.image.storage
            if storage.exists(name):  # a file left by a worker killed before its commit
                storage.delete(name)
            generation.image.save(f"image.{ext}", ContentFile(data), save=False)
            generation.width = sweep.canvas_width
            generation.height = sweep.canvas_height
            generation.status = GenerationStatus.DONE
            generation.error = ""
            for name, value in generation_ocr_fields(check=text).items():
                setattr(generation, name, value)
        generation.save()
    return generation.status


def _environment_get(engine: Engine) -> dict[str, Any]:
    global _environment
    if _environment is None or engine is not _engine:
        env = engine.environment()
        if engine is not _engine:
            return env
        _environment = env
    return _environment


def _snapshot(*, spec: ModelSpec, sweep: Sweep, environment: dict[str, Any], fallback_for: str = "") -> dict:
    snapshot: dict[str, Any] = {
        "spec": spec.snapshot(),
        "environment": environment,
        "canvas": {"width": sweep.canvas_width, "height": sweep.canvas_height, "format": sweep.image_format},
    }
    if fallback_for:
        snapshot["fallback_for"] = fallback_for
    return snapshot


def _render_into(
    *,
    engine: Engine,
    model: ImageModel,
    sweep: Sweep,
    remaining: dict[str, Generation],
    worker: str,
    result: ChunkResult,
    fallback_for: ImageModel | None = None,
) -> None:
    """Render `remaining` with `model`, saving and removing each image as it arrives."""
    spec = image_model_spec(model=model)
    snapshot = _snapshot(
        spec=spec, sweep=sweep, environment=_environment_get(engine),
        fallback_for=fallback_for.slug if fallback_for else "",
    )
    requests = [RenderRequest(key=key, prompt=g.prompt.text, seed=int(g.seed)) for key, g in remaining.items()]
    fallback = model if fallback_for else None
    # Encoding a 1024² PNG takes ~0.1 s of CPU: it runs on a thread while the GPU renders the
    # next image, and the database write follows one image later (a kill loses at most two).
    previous: tuple[Generation, RenderOutcome, Future] | None = None

    def save(generation: Generation, outcome: RenderOutcome, encoding: Future) -> None:
        encoded, text = encoding.result()
        state = generation_save_outcome(
            generation_id=generation.pk, sweep=sweep, outcome=outcome, worker=worker,
            settings_snapshot=snapshot, fallback=fallback, encoded=encoded, text=text,
        )
        if state == "done":
            result.done += 1
        elif state == "failed":
            result.failed += 1
            result.errors.append(Generation.objects.values_list("error", flat=True).get(pk=generation.pk))
        else:
            result.discarded += 1

    try:
        for outcome in engine.render(spec, requests, progress=worker_liveness.progress):
            generation = remaining.pop(outcome.key, None)
            if generation is None:
                continue
            worker_liveness.image_measured(seconds=None if outcome.error else outcome.seconds)
            encoding = _encoder().submit(image_encode_and_check, outcome=outcome, sweep=sweep,
                                         expected_text=generation.prompt.expected_text,
                                         language=generation.prompt.language)
            if previous is not None:
                save(*previous)
            previous = (generation, outcome, encoding)
    finally:
        if previous is not None:
            save(*previous)


_encoder_pool: ThreadPoolExecutor | None = None


def _encoder() -> ThreadPoolExecutor:
    """One encoding thread per worker process (PIL releases the GIL while it compresses)."""
    global _encoder_pool
    with _engine_lock:
        if _encoder_pool is None:
            _encoder_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalsite-encode")
        return _encoder_pool


def _watch(*, sweep: Sweep, model: ImageModel, remaining: dict[str, Generation]) -> None:
    """Tell the liveness monitor what this process now holds (heartbeats, watchdog limit)."""
    worker_liveness.chunk_start(sweep_id=sweep.pk, slug=model.slug,
                                generation_ids=[g.pk for g in remaining.values()],
                                seconds=model_seconds_measured(model=model))


def _fail_all(remaining: dict[str, Generation], error: str, result: ChunkResult) -> None:
    for generation in remaining.values():
        if generation_fail(generation_id=generation.pk, error=error):
            result.failed += 1
    remaining.clear()
    result.errors.append(error)


def generation_chunk_render(
    *,
    sweep_id: int,
    model_id: int,
    generation_ids: list[int],
    worker: str | None = None,
    engine: Engine | None = None,
) -> ChunkResult:
    """Render one model-major chunk. Idempotent: images already done (or held by a live
    worker) are skipped, so a redelivered or re-enqueued chunk never duplicates an image.

    A model that can't load fails its images with the loader's message; one that runs out
    of memory even with CPU offload renders with its fallback model, if it has one.
    """
    worker_liveness.chunk_received()  # busy from here: an idle worker proves the queue empty (sweep_reconcile)
    try:
        return _chunk_render(sweep_id=sweep_id, model_id=model_id, generation_ids=generation_ids, worker=worker,
                             engine=engine)
    finally:
        worker_liveness.chunk_end()


def _chunk_render(
    *, sweep_id: int, model_id: int, generation_ids: list[int], worker: str | None, engine: Engine | None,
) -> ChunkResult:

    worker = worker or worker_name()
    result = ChunkResult()
    sweep = Sweep.objects.filter(pk=sweep_id).first()
    model = ImageModel.objects.select_related("fallback").filter(pk=model_id).first()
    if sweep is None or model is None:
        logger.warning("chunk for sweep %s model %s: no such sweep or model; nothing to do", sweep_id, model_id)
        return result
    if settings.RENDER_TEST_EXIT_BEFORE_CLAIM:  # test hook: a worker killed between receiving and claiming
        logger.warning("EVALSITE_TEST_EXIT_BEFORE_CLAIM: exiting before claiming %d images", len(generation_ids))
        os._exit(3)
    claimed = generations_claim(generation_ids=generation_ids, worker=worker)
    result.claimed = len(claimed)
    result.skipped = len(generation_ids) - len(claimed)
    if claimed:
        sweep_status_refresh(sweep=sweep)
        remaining = {str(g.pk): g for g in claimed}
        _watch(sweep=sweep, model=model, remaining=remaining)
        try:
            engine = engine or engine_get()
            _render_into(engine=engine, model=model, sweep=sweep, remaining=remaining, worker=worker, result=result)
        except LoadError as exc:
            _fail_all(remaining, f"model {model.slug} could not be loaded: {exc}", result)
        except OutOfMemory as exc:
            fallback = model.fallback
            if fallback is None or not fallback.enabled or fallback.pk == model.pk:
                _fail_all(remaining, f"out of GPU memory even with CPU offload, and no fallback model: {exc}", result)
            else:
                logger.warning("model %s out of memory; rendering %d images with fallback %s",
                               model.slug, len(remaining), fallback.slug)
                _watch(sweep=sweep, model=fallback, remaining=remaining)
                try:
                    _render_into(engine=engine, model=fallback, sweep=sweep, remaining=remaining, worker=worker,
                                 result=result, fallback_for=model)
                except (LoadError, OutOfMemory) as fallback_exc:
                    _fail_all(remaining, f"out of GPU memory ({exc}); the fallback {fallback.slug} "
                                         f"failed too: {fallback_exc}", result)
        except Exception as exc:  # noqa: BLE001 - the chunk's images fail with the cause; the worker lives on
            logger.exception("chunk of model %s crashed", model.slug)
            _fail_all(remaining, f"render crashed: {type(exc).__name__}: {exc}", result)
        except BaseException:  # shutdown: hand the images back for another worker
            generations_abandon(generation_ids=[g.pk for g in remaining.values()], worker=worker)
            raise
        if remaining:  # the engine yielded fewer images than asked for
            _fail_all(remaining, "the engine returned no result for this image", result)
    sweep_status_refresh(sweep=sweep)
    if result.done:
        sweep_images_added.send(sender=Sweep, sweep_id=sweep.pk)
    return result
