"""Reads of the generation app: sweep progress for the sweep page, the study page and --wait."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from generation.models import (
    Generation,
    GenerationStatus,
    ImageModel,
    Origin,
    Sweep,
    VramProfile,
    VramProfileStatus,
    WorkerReport,
)


def sweep_progress(*, sweep: Sweep) -> list[dict[str, Any]]:
    """Per model: done, failed, running, pending, total, images/s, ETA (seconds) and mean render seconds.

    images/s is wall-clock throughput since the model's first image was claimed (model load
    included), so the ETA is honest about what is left to wait.
    """
    rows = (
        Generation.objects.filter(sweep=sweep)
        .values("model_id", "model__name", "model__slug")
        .annotate(
            total=Count("pk"),
            done=Count("pk", filter=Q(status=GenerationStatus.DONE)),
            failed=Count("pk", filter=Q(status=GenerationStatus.FAILED)),
            running=Count("pk", filter=Q(status=GenerationStatus.RUNNING)),
            cancelled=Count("pk", filter=Q(status=GenerationStatus.CANCELLED)),
            imported=Count("pk", filter=Q(origin=Origin.IMPORTED)),
            fallback=Count("pk", filter=Q(status=GenerationStatus.DONE, fallback_used__isnull=False)),
            first_start=Min("started_at"),
            last_finish=Max("finished_at", filter=Q(status=GenerationStatus.DONE)),
            mean_seconds=Avg("seconds", filter=Q(status=GenerationStatus.DONE, origin=Origin.RENDERED)),
            supplied_seconds=Avg("seconds", filter=Q(status=GenerationStatus.DONE, origin=Origin.IMPORTED)),
        )
        .order_by("model__name", "model_id")
    )
    progress = []
    for row in rows:
        remaining = row["total"] - row["done"] - row["failed"] - row["cancelled"]
        rate = None
        if row["imported"] == row["total"]:
            pass  # made elsewhere: no throughput of ours to report
        elif row["done"] and row["first_start"] and row["last_finish"]:
            elapsed = (row["last_finish"] - row["first_start"]).total_seconds()
            rate = row["done"] / elapsed if elapsed > 0 else None
        eta = 0.0 if remaining == 0 else (remaining / rate if rate else None)
        progress.append({
            "model_id": row["model_id"],
            "model_name": row["model__name"],
            "model_slug": row["model__slug"],
            "done": row["done"],
            "failed": row["failed"],
            "running": row["running"],
            "cancelled": row["cancelled"],
            "imported": row["imported"],
            "supplied_seconds": row["supplied_seconds"],
            "pending": remaining - row["running"],
            "total": row["total"],
            "fallback_used": row["fallback"],
            "images_per_second": rate,
            "eta_seconds": eta,
            "mean_seconds": row["mean_seconds"],
            "finished": remaining == 0,
        })
    return progress


def sweep_totals(*, sweep: Sweep) -> dict[str, Any]:
    """The whole sweep at a glance (sum over models; ETA = the slowest model's, as they share workers)."""
    per_model = sweep_progress(sweep=sweep)
    keys = ("done", "failed", "running", "pending", "cancelled", "total", "fallback_used", "imported")
    totals: dict[str, Any] = {key: sum(row[key] for row in per_model) for key in keys}
    finished = totals["done"] + totals["failed"] + totals["cancelled"]
    totals["fraction"] = finished / totals["total"] if totals["total"] else 1.0
    totals["bar"] = progress_bar(done=totals["done"], failed=totals["failed"], cancelled=totals["cancelled"],
                                 running=totals["running"], total=totals["total"])
    totals["finished"] = totals["total"] > 0 and finished == totals["total"]
    etas = [row["eta_seconds"] for row in per_model]
    totals["eta_seconds"] = None if any(e is None for e in etas) else sum(etas)
    totals["status"] = sweep.status
    return totals


def progress_bar(*, done: int, failed: int, cancelled: int, running: int, total: int) -> list[dict[str, Any]]:
    """Segments of a truthful progress bar: each state's share of the images in percent (failed in its own
    colour, so a sweep whose images all failed never looks like a success)."""
    segments = []
    for state, n in (("done", done), ("failed", failed), ("cancelled", cancelled), ("running", running)):
        if n and total:
            segments.append({"state": state, "n": n, "percent": round(100.0 * n / total, 3)})
    return segments


def sweep_list_rows(*, limit: int = 100) -> list[dict[str, Any]]:
    """The sweep list: each sweep with its models, image counts by state and a progress bar."""
    sweeps = list(Sweep.objects.select_related("suite").prefetch_related("image_models").order_by("-created_at")[:limit])
    counts: dict[int, dict[str, int]] = {s.pk: {} for s in sweeps}
    for sweep_id, status, n in (
        Generation.objects.filter(sweep__in=sweeps).values_list("sweep_id", "status").annotate(n=Count("pk")).order_by()
    ):
        counts[sweep_id][status] = n
    rows = []
    for sweep in sweeps:
        c = counts[sweep.pk]
        by = {state: c.get(state, 0) for state in GenerationStatus.values}
        total = sum(by.values())
        rows.append({
            "sweep": sweep, "models": [m.name for m in sweep.image_models.all()], "total": total, **by,
            "bar": progress_bar(done=by["done"], failed=by["failed"], cancelled=by["cancelled"],
                                running=by["running"], total=total),
        })
    return rows


def sweep_has_images(*, sweep: Sweep) -> bool:
    """Whether anything of the sweep was rendered or imported (a study needs at least one image).

    Placeholders that only carry imported ratings (import_ratings: done, no file) are not images."""
    return Generation.objects.filter(sweep=sweep, status=GenerationStatus.DONE).exclude(image="").exists()


def image_model_seconds_per_image(*, image_models: list[ImageModel]) -> dict[int, float]:
    """Median measured render seconds per image of each model, over its rendered images (imported figures
    are not ours and never count)."""
    seconds: dict[int, list[float]] = {}
    rows = (
        Generation.objects.filter(model__in=image_models, status=GenerationStatus.DONE, origin=Origin.RENDERED,
                                  seconds__isnull=False)
        .order_by("-finished_at").values_list("model_id", "seconds")[:20000]
    )
    for model_id, sec in rows:
        if sec is not None:  # filtered above; the column is nullable
            seconds.setdefault(model_id, []).append(sec)
    return {model_id: statistics.median(values) for model_id, values in seconds.items()}


def sweep_estimate(
    *, prompt_count: int, image_models: list[ImageModel], seeds: int
) -> dict[str, Any]:
    """What a sweep would cost before it starts: images, and the time from measured s/image where known.

    The time assumes one worker (models render one after another); models never measured are listed.
    """
    per_model = image_model_seconds_per_image(image_models=image_models)
    images_per_model = prompt_count * seeds
    known = [m for m in image_models if m.pk in per_model]
    unknown = [m for m in image_models if m.pk not in per_model]
    seconds = sum(per_model[m.pk] * images_per_model for m in known)
    return {
        "prompts": prompt_count, "seeds": seeds, "models": len(image_models),
        "images": images_per_model * len(image_models),
        "seconds": seconds if known else None,
        "per_model": [{"name": m.name, "seconds_per_image": per_model.get(m.pk),
                       "seconds": per_model[m.pk] * images_per_model if m.pk in per_model else None}
                      for m in image_models],
        "unknown": [m.name for m in unknown],
    }


def sweep_errors(*, sweep: Sweep, limit: int = 20) -> list[Mapping[str, object]]:
    """The distinct errors of failed images, most frequent first, for the staff page."""
    return list(
        Generation.objects.filter(sweep=sweep, status=GenerationStatus.FAILED)
        .values("model__name", "error")
        .annotate(n=Count("pk"))
        .order_by("-n")[:limit]
    )


def generation_text_checks(*, sweep: Sweep) -> dict[int, dict[str, Any]]:
    """OCR of a sweep's text-prompt images by Generation id (for the gallery): what Tesseract read, the
    character error rate against the prompt's expected text, whether every word was read, or why OCR failed."""
    rows = (
        Generation.objects.filter(sweep=sweep, status=GenerationStatus.DONE).exclude(prompt__expected_text="")
        .order_by().values("id", "prompt__expected_text", "ocr_text", "ocr_cer", "ocr_all_words", "ocr_languages",
                           "ocr_error")
    )
    return {
        r["id"]: {"expected": r["prompt__expected_text"], "recognised": r["ocr_text"], "cer": r["ocr_cer"],
                  "accuracy": None if r["ocr_cer"] is None else 1.0 - r["ocr_cer"], "all_words": r["ocr_all_words"],
                  "languages": r["ocr_languages"], "error": r["ocr_error"]}
        for r in rows
    }


GALLERY_PROMPTS_PER_PAGE = 40


def sweep_gallery(
    *, sweep: Sweep, category: str = "", model_id: int | None = None, failed_only: bool = False, page: int = 1
) -> dict[str, Any]:
    """The contact sheet: one row per prompt, one column per model, every seed's image in its cell.

    Filters: a prompt category, one model, failed images only. Rows are paginated by prompt.
    """
    models = list(sweep.image_models.order_by("name", "pk"))
    gens = Generation.objects.filter(sweep=sweep)
    if category:
        gens = gens.filter(prompt__category=category)
    if model_id:
        gens = gens.filter(model_id=model_id)
        models = [m for m in models if m.pk == model_id]
    if failed_only:
        gens = gens.filter(status=GenerationStatus.FAILED)
    prompt_ids = list(
        gens.order_by("prompt__position").values_list("prompt_id", flat=True).distinct()
    )
    pages = Paginator(prompt_ids, GALLERY_PROMPTS_PER_PAGE)
    page_obj = pages.get_page(page)
    shown = list(page_obj.object_list)
    cells: dict[tuple[int, int], list[Generation]] = {}
    prompts: dict[int, Any] = {}
    for g in gens.filter(prompt_id__in=shown).select_related("prompt").order_by("prompt__position", "model_id", "seed"):
        cells.setdefault((g.prompt_id, g.model_id), []).append(g)
        prompts[g.prompt_id] = g.prompt
    rows = [
        {"prompt": prompts[pid], "cells": [cells.get((pid, m.pk), []) for m in models]}
        for pid in shown if pid in prompts
    ]
    categories = sorted(
        c for c in Generation.objects.filter(sweep=sweep).order_by().values_list("prompt__category", flat=True)
        .distinct() if c
    )
    return {"models": models, "rows": rows, "page": page_obj, "categories": categories}


def sweep_failures(*, sweep: Sweep, model_id: int | None = None, category: str = "") -> list[Generation]:
    """Every failed image of a sweep with its full error (the gallery lists them)."""
    gens = Generation.objects.filter(sweep=sweep, status=GenerationStatus.FAILED)
    if model_id:
        gens = gens.filter(model_id=model_id)
    if category:
        gens = gens.filter(prompt__category=category)
    return list(gens.select_related("prompt", "model").order_by("model__name", "prompt__position", "seed")[:500])


def generation_facts(*, generation: Generation) -> dict[str, Any]:
    """What staff see beside one image: seed, settings, seconds, VRAM, worker, library versions, origin."""
    snapshot = generation.settings_snapshot or {}
    spec = snapshot.get("spec") or {}
    environment = snapshot.get("environment") or {}
    imported = generation.origin == Origin.IMPORTED
    library_keys = ("torch", "diffusers", "transformers", "accelerate", "bitsandbytes", "python", "cuda", "cudnn")
    settings_keys = ("num_inference_steps", "guidance_scale", "width", "height", "dtype", "quantization", "offload",
                     "fast_mode", "pipeline_class", "source", "revision", "extra_params")
    return {
        "imported": imported,
        "import": snapshot.get("import") or {},
        "seed": generation.seed,
        "settings": {k: spec[k] for k in settings_keys if k in spec and spec[k] not in ("", None, {})},
        "canvas": snapshot.get("canvas") or {},
        "seconds": generation.seconds,
        "seconds_supplied": imported and generation.seconds is not None,
        "cost": generation.cost,
        "vram_allocated_gib": None if generation.peak_vram_allocated is None else generation.peak_vram_allocated / 2**30,
        "vram_reserved_gib": None if generation.peak_vram_reserved is None else generation.peak_vram_reserved / 2**30,
        "worker": generation.worker,
        "device": generation.device,
        "gpu_name": generation.gpu_name,
        "libraries": {k: environment[k] for k in library_keys if environment.get(k)},
        "native": (generation.native_width, generation.native_height) if generation.native_width else None,
    }


def sweep_prompt_generations(*, sweep: Sweep, prompt_id: int) -> list[dict[str, Any]]:
    """One prompt of a sweep: every model's images side by side (by model, then seed), with their facts."""
    texts = generation_text_checks(sweep=sweep)
    gens = (
        Generation.objects.filter(sweep=sweep, prompt_id=prompt_id).select_related("model")
        .order_by("model__name", "model_id", "seed")
    )
    return [{"generation": g, "facts": generation_facts(generation=g), "text": texts.get(g.pk)} for g in gens]


def worker_capabilities(*, image_models: list[ImageModel], max_age_seconds: float = 24 * 3600) -> dict[int, dict]:
    """Per model: which reporting workers can load it, and why the others can't.

    {model_id: {"loadable": bool | None (no worker reported), "workers": [...], "reasons": [...]}}
    Reports older than max_age_seconds are ignored (a worker that left says nothing about now).
    """
    fresh = list(WorkerReport.objects.filter(reported_at__gte=timezone.now() - timedelta(seconds=max_age_seconds)))
    out: dict[int, dict] = {}
    for m in image_models:
        can, reasons = [], []
        for report in fresh:
            entry = (report.capabilities or {}).get(m.slug)
            if entry is None:
                reasons.append(f"{report.worker}: not known to this worker yet (ask again)")
            elif entry.get("loadable"):
                can.append(report.worker)
            else:
                reasons.append(f"{report.worker}: {entry.get('reason', 'cannot load it')}")
        out[m.pk] = {"loadable": (bool(can) if fresh else None), "workers": can, "reasons": reasons,
                     "reported": len(fresh)}
    return out


# --------------------------------------------------------------------------- VRAM profiles (issue 14)


def vram_profiles_latest_done(*, model_ids: list[int]) -> dict[int, VramProfile]:
    """The latest finished profile of each model (by finish time), for the board's "Min VRAM"; absent = never."""
    out: dict[int, VramProfile] = {}
    rows = (VramProfile.objects.filter(image_model_id__in=model_ids, status=VramProfileStatus.DONE)
            .order_by("image_model_id", "-finished_at", "-id"))
    for profile in rows:
        out.setdefault(profile.image_model_id, profile)
    return out


def vram_profile_latest_done(*, image_model: ImageModel) -> VramProfile | None:
    return vram_profiles_latest_done(model_ids=[image_model.pk]).get(image_model.pk)


def vram_profile_latest(*, image_model: ImageModel) -> VramProfile | None:
    """The newest profile of a model whatever its state (the model page shows queued, running, failed too)."""
    return VramProfile.objects.filter(image_model=image_model).order_by("-created_at", "-id").first()


def vram_profile_fits(*, profile: VramProfile) -> list[dict[str, Any]]:
    """The "fits on" rows of a profile's report: per card, the setting, s/image and peak VRAM (setting None:
    nothing rendered under that card's cap), smallest card first."""
    rows = []
    for row in sorted(profile.report.get("cards", []), key=lambda r: r["card_gb"]):
        rows.append({"card_gb": row["card_gb"], "setting": row.get("setting"), "seconds": row.get("seconds"),
                     "peak_allocated_gib": row.get("peak_allocated_gib"),
                     "peak_reserved_gib": row.get("peak_reserved_gib"), "predicted": bool(row.get("predicted"))})
    return rows


def vram_profiles_latest(*, model_ids: list[int]) -> dict[int, VramProfile]:
    """The newest profile of each model whatever its state (queued, running, failed, done)."""
    out: dict[int, VramProfile] = {}
    for profile in VramProfile.objects.filter(image_model_id__in=model_ids).order_by("image_model_id", "-created_at",
                                                                                     "-id"):
        out.setdefault(profile.image_model_id, profile)
    return out


def vram_model_rows(*, models: list[ImageModel]) -> list[dict[str, Any]]:
    """The staff models page: per model its latest finished profile (Min VRAM) and its newest profile's state."""
    ids = [m.pk for m in models]
    done, latest = vram_profiles_latest_done(model_ids=ids), vram_profiles_latest(model_ids=ids)
    return [{"model": m, "done": done.get(m.pk), "latest": latest.get(m.pk),
             "min_card": (done[m.pk].report.get("min_card") if m.pk in done else None)} for m in models]


def vram_profile_settings(*, profile: VramProfile) -> list[dict[str, Any]]:
    """What each setting took uncapped (the profile's first step), in the order measured; so far, while running."""
    return [{"name": name, **result} for name, result in (profile.report.get("settings") or {}).items()]
