"""Validation of a model spec, shared by the admin form, the services and seed_models.

Checks only what can be known without loading weights; a spec that passes can still fail
to load on the worker (missing directory, wrong class), which fails that model's images
with the loader's message.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

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
MAX_SIDE = 4096
MAX_STEPS = 1000
GUIDANCE_RANGE = (0.0, 50.0)
REMOTE_CODE_KEY = "trust_remote_code"  # never in load_params: the model's own field, behind its own permission
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PIPELINE_NAME = re.compile(r"[\"'](\w+Pipeline)[\"']")


def size_multiple(*, pipeline_class: str, backend: str = "diffusers") -> int:
    """16 for classes that patchify latents 2×2 over an 8× VAE (and unknown ones, to be safe); else 8."""
    if backend == "transformers":
        return 8
    return 16 if pipeline_class in SIXTEEN_ALIGNED or not pipeline_class else 8


def model_roots() -> list[Path]:
    """Folders local model directories may live in: MODEL_DIR and EVALSITE_MODEL_ROOTS."""
    return [Path(settings.MODEL_DIR), *(Path(p) for p in getattr(settings, "MODEL_ROOTS", []))]


def source_error(*, source: str) -> str:
    """A source is a hub repo id (org/name) or a model directory (inside a model root, or existing).

    Never a filesystem root or an arbitrary folder (a worker would load whatever is there): outside
    the roots only an existing model directory (model_index.json or config.json) is accepted. A
    directory the web host cannot see (a GPU host's own volume) is accepted when it lies inside a
    root; one it can see must be a directory.
    """
    source = (source or "").strip()
    if not source:
        return "Give a hub id (org/name) or a local directory."
    if source.startswith("/"):
        path = Path(source)
        if ".." in path.parts or path != Path(*path.parts):
            return f"{source!r}: give the directory without '..' or '//'."
        roots = model_roots()
        inside = [r for r in roots if path != r and path.is_relative_to(r)]
        if not inside and len(path.parts) > 2 and path.is_dir() and any(
                (path / name).is_file() for name in ("model_index.json", "config.json")):
            return ""  # an existing model directory elsewhere (build_demo_models --dir)
        if not inside:
            where = ", ".join(str(r) for r in roots)
            return f"{source!r} is not a model directory inside the model roots ({where}; EVALSITE_MODEL_ROOTS)."
        if path.exists() and not path.is_dir():
            return f"{source!r} is a file, not a model directory."
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
    known = diffusers_pipeline_names()
    if known is None:  # no diffusers on this host (a web-only install): the worker's loader checks it
        return ""
    version, names = known
    if pipeline_class not in names:
        return f"diffusers {version} has no pipeline class {pipeline_class}."
    return ""


@functools.lru_cache(maxsize=1)
def diffusers_pipeline_names() -> tuple[str, frozenset[str]] | None:
    """(version, pipeline class names) of the installed diffusers, read from its package index without
    importing it: ``import diffusers`` loads torch (70 s on a loaded machine here), which the web process
    never does. Modular and ONNX pipelines are not DiffusionPipelines, so they are left out."""
    spec = importlib.util.find_spec("diffusers")
    if spec is None or not spec.origin:
        return None
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
        version = importlib.metadata.version("diffusers")
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    names = {n for n in PIPELINE_NAME.findall(source) if "Modular" not in n and "Onnx" not in n}
    return version, frozenset(names)


def fallback_errors(*, model: ImageModel) -> list[str]:
    """A fallback must not be the model itself, and following fallbacks must end."""
    fallback = model.fallback if model.fallback_id else None
    if fallback is None:
        return []
    if model.pk is not None and fallback.pk == model.pk:
        return ["A model cannot be its own fallback."]
    seen = {model.pk} if model.pk is not None else set()
    chain = [model.slug or "this model"]
    current: ImageModel | None = fallback
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
    elif model.num_inference_steps > MAX_STEPS:
        add("num_inference_steps", f"Steps must be at most {MAX_STEPS}.")
    multiple = size_multiple(pipeline_class=model.pipeline_class, backend=model.backend)
    for field in ("width", "height"):
        value = getattr(model, field)
        if not value or value % multiple:
            add(field, f"{field.capitalize()} must be a positive multiple of {multiple} for "
                       f"{model.pipeline_class or ('the transformers backend' if model.backend == 'transformers' else 'an auto-detected pipeline')}.")
        elif value > MAX_SIDE:
            add(field, f"{field.capitalize()} must be at most {MAX_SIDE} pixels.")
    if model.guidance_scale is not None:
        low, high = GUIDANCE_RANGE
        if not math.isfinite(model.guidance_scale) or model.guidance_scale < low:
            add("guidance_scale", "Guidance must be 0 or more.")
        elif model.guidance_scale > high:
            add("guidance_scale", f"Guidance must be at most {high:g}.")
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
    elif REMOTE_CODE_KEY in model.load_params:
        add("load_params", "trust_remote_code is not a load parameter: use the field "
                           "\"run the model's own code\", which needs its own permission.")
    if model.backend == "transformers" and not model.trust_remote_code:
        add("trust_remote_code", "The transformers backend runs the model's own code: it needs "
                                 "\"run the model's own code\" (and the permission to set it).")
    if model.backend != "imported":  # made elsewhere: nothing here loads it
        add("source", source_error(source=model.source))
        add("pipeline_class", pipeline_class_error(backend=model.backend, pipeline_class=model.pipeline_class))
    if model.min_vram_gb is not None and model.min_vram_gb <= 0:
        add("min_vram_gb", "Minimum VRAM must be positive (GiB).")
    return errors
