"""Validation of a model spec, shared by the admin form and services."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generation.models import ImageModel

# Classes whose VAE/patchification needs sizes that are multiples of 16; others need 8.
SIXTEEN_ALIGNED = {
    "FluxPipeline", "StableDiffusion3Pipeline", "ZImagePipeline", "ErnieImagePipeline", "QwenImagePipeline",
    "SanaPipeline", "Lumina2Pipeline", "HiDreamImagePipeline", "CogView4Pipeline",
}


def size_multiple(*, pipeline_class: str) -> int:
    return 16 if pipeline_class in SIXTEEN_ALIGNED or not pipeline_class else 8


def image_model_errors(*, model: "ImageModel") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if model.num_inference_steps is None or model.num_inference_steps < 1:
        errors.setdefault("num_inference_steps", []).append("Steps must be at least 1.")
    multiple = size_multiple(pipeline_class=model.pipeline_class)
    for field in ("width", "height"):
        value = getattr(model, field)
        if not value or value % multiple:
            errors.setdefault(field, []).append(
                f"{field.capitalize()} must be a positive multiple of {multiple} for "
                f"{model.pipeline_class or 'an auto-detected pipeline'}."
            )
    if model.guidance_scale is not None and model.guidance_scale < 0:
        errors.setdefault("guidance_scale", []).append("Guidance must be 0 or more.")
    if model.fallback_id is not None and model.pk is not None and model.fallback_id == model.pk:
        errors.setdefault("fallback", []).append("A model cannot be its own fallback.")
    if not isinstance(model.extra_params, dict):
        errors.setdefault("extra_params", []).append("Must be a JSON object.")
    if not isinstance(model.load_params, dict):
        errors.setdefault("load_params", []).append("Must be a JSON object.")
    if not (model.source or "").strip():
        errors.setdefault("source", []).append("Give a hub id (org/name) or a local directory.")
    return errors
