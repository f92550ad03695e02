"""Reads of the generation app: sweep progress for the sweep page, the study page and --wait."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count, Max, Min, Q

from generation.models import Generation, GenerationStatus, ImageModel, Sweep


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
            fallback=Count("pk", filter=Q(status=GenerationStatus.DONE, fallback_used__isnull=False)),
            first_start=Min("started_at"),
            last_finish=Max("finished_at", filter=Q(status=GenerationStatus.DONE)),
            mean_seconds=Avg("seconds", filter=Q(status=GenerationStatus.DONE)),
        )
        .order_by("model__name", "model_id")
    )
    progress = []
    for row in rows:
        remaining = row["total"] - row["done"] - row["failed"]
        rate = None
        if row["done"] and row["first_start"] and row["last_finish"]:
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
    keys = ("done", "failed", "running", "pending", "total", "fallback_used")
    totals: dict[str, Any] = {key: sum(row[key] for row in per_model) for key in keys}
    finished = totals["done"] + totals["failed"]
    totals["fraction"] = finished / totals["total"] if totals["total"] else 1.0
    totals["finished"] = totals["total"] > 0 and finished == totals["total"]
    etas = [row["eta_seconds"] for row in per_model]
    totals["eta_seconds"] = None if any(e is None for e in etas) else sum(etas)
    totals["status"] = sweep.status
    return totals


def sweep_errors(*, sweep: Sweep, limit: int = 20) -> list[dict[str, Any]]:
    """The distinct errors of failed images, most frequent first, for the staff page."""
    return list(
        Generation.objects.filter(sweep=sweep, status=GenerationStatus.FAILED)
        .values("model__name", "error")
        .annotate(n=Count("pk"))
        .order_by("-n")[:limit]
    )


def image_models_enabled() -> list[ImageModel]:
    return list(ImageModel.objects.filter(enabled=True).order_by("name"))


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
