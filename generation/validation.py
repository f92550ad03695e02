"""Validation of a model spec, shared by the admin form, the services and seed_models.

Checks only what can be known without loading weights; a spec that passes can still fail
to load on the worker (missing directory, wrong class), which fails that model's images
with the loader's message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generation.models import ImageModel

# Classes whose VAE/patchification needs sizes that are multiples of 16; others need 8.
SIXTEEN_ALIGNED = {
    "FluxPipeline", "StableDiffusion3Pipeline", "ZImagePipeline", "ErnieImagePipeline", "QwenImagePipeline",
    "SanaPipeline", "Lumina2Pipeline", "HiDreamImagePipeline", "CogView4Pipeline",
}
# Call arguments that have their own fields (or belong to the engine): not allowed in extra_params.
RESERVED_CALL_PARAMS = {
    "prompt", "generator", "num_inference_steps", "guidance_scale", "width", "height", "output_type",
    "num_images_per_prompt", "return_dict",
}
TRANSFORMERS_CLASSES = {"", "AutoModelForCausalLM"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def size_multiple(*, pipeline_class: str, backend: str = "diffusers") -> int:
    """16 for classes that patchify latents 2×2 over an 8× VAE (and unknown ones, to be safe); else 8."""
    if backend == "transformers":
        return 8
    return 16 if pipeline_class in SIXTEEN_ALIGNED or not pipeline_class else 8


def source_error(*, source: str) -> str:
    """A source is a hub repo id (org/name) or an absolute local directory."""
    source = (source or "").strip()
    if not source:
        return "Give a hub id (org/name) or a local directory."
    if source.startswith("/"):
        return ""
    if HUB_ID.match(source) and ".." not in source:
        return ""
    return f"{source!r} is neither a hub id (org/name) nor an absolute local path."


def pipeline_class_error(*, backend: str, pipeline_class: str) -> str:
    if backend == "transformers":
        if pipeline_class not in TRANSFORMERS_CLASSES:
            return "The transformers backend loads AutoModelForCausalLM; leave the class empty."
        return ""
    if not pipeline_class:
        return ""
    if not CLASS_NAME.match(pipeline_class):
        return f"{pipeline_class!r} is not a class name."
    try:
        import diffusers
    except ImportError:  # pragma: no cover - diffusers is a pinned requirement
        return ""
    cls = getattr(diffusers, pipeline_class, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, diffusers.DiffusionPipeline):
        return f"diffusers {diffusers.__version__} has no pipeline class {pipeline_class}."
    return ""


def fallback_errors(*, model: ImageModel) -> list[str]:
    """A fallback must not be the model itself, and following fallbacks must end."""
    fallback = model.fallback if model.fallback_id else None
    if fallback is None:
        return []
    if model.pk is not None and fallback.pk == model.pk:
        return ["A model cannot be its own fallback."]
    seen = {model.pk} if model.pk is not None else set()
    chain = [model.slug or "this model"]
    current = fallback
    while current is not None:
        chain.append(current.slug)
        if current.pk in seen:
            return [f"Fallbacks form a cycle: {' → '.join(chain)}."]
        seen.add(current.pk)
        current = current.fallback
    return []


def image_model_errors(*, model: ImageModel) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        if message:
            errors.setdefault(field, []).append(message)

    if model.num_inference_steps is None or model.num_inference_steps < 1:
        add("num_inference_steps", "Steps must be at least 1.")
    multiple = size_multiple(pipeline_class=model.pipeline_class, backend=model.backend)
    for field in ("width", "height"):
        value = getattr(model, field)
        if not value or value % multiple:
            add(field, f"{field.capitalize()} must be a positive multiple of {multiple} for "
                       f"{model.pipeline_class or ('the transformers backend' if model.backend == 'transformers' else 'an auto-detected pipeline')}.")
    if model.guidance_scale is not None and model.guidance_scale < 0:
        add("guidance_scale", "Guidance must be 0 or more.")
    for message in fallback_errors(model=model):
        add("fallback", message)
    if not isinstance(model.extra_params, dict):
        add("extra_params", "Must be a JSON object.")
    else:
        clash = sorted(RESERVED_CALL_PARAMS & set(model.extra_params))
        if clash:
            add("extra_params", f"Set {', '.join(clash)} with the fields of this form, not in extra params.")
    if not isinstance(model.load_params, dict):
        add("load_params", "Must be a JSON object.")
    if model.backend != "imported":  # made elsewhere: nothing here loads it
        add("source", source_error(source=model.source))
        add("pipeline_class", pipeline_class_error(backend=model.backend, pipeline_class=model.pipeline_class))
    if model.min_vram_gb is not None and model.min_vram_gb <= 0:
        add("min_vram_gb", "Minimum VRAM must be positive (GiB).")
    return errors
