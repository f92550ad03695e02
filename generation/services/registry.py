"""The model registry: the reference systems and the offline demo models."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from django.db import transaction

from generation.engine.demo_draw import DEMO_MODELS, PAINTERS
from generation.models import Backend, DType, ImageModel, Offload, Quantization

logger = logging.getLogger(__name__)

# The five open models of the public benchmark (DESIGN.md), with the benchmark's settings.
# Order matters: a fallback is seeded before the models that fall back to it.
REFERENCE_MODELS: list[dict[str, Any]] = [
    {
        "slug": "z-image-turbo",
        "name": "Z-Image Turbo",
        "backend": Backend.DIFFUSERS,
        "source": "Tongyi-MAI/Z-Image-Turbo",
        "pipeline_class": "ZImagePipeline",
        "num_inference_steps": 9,
        "guidance_scale": 0.0,
        "width": 1024,
        "height": 1024,
        "dtype": DType.BF16,
        "min_vram_gb": 16.0,
        "notes": "Guidance 0.0 must be passed: any value > 0 turns CFG on. "
        "The benchmark's 'z-image/z-image-turbo' and 'Baidu' attributions are wrong.",
    },
    {
        "slug": "sd3-5-large",
        "name": "Stable Diffusion 3.5 Large",
        "backend": Backend.DIFFUSERS,
        "source": "stabilityai/stable-diffusion-3.5-large",
        "pipeline_class": "StableDiffusion3Pipeline",
        "num_inference_steps": 28,
        "guidance_scale": 7.0,
        "width": 1024,
        "height": 1024,
        "dtype": DType.BF16,
        "min_vram_gb": 24.0,
        "notes": "Guidance 7.0 as in the benchmark (vendor suggests 4.5-3.5). "
        "Peak 28.1 GiB allocated (30.3 reserved) at 1024² bf16 on an H200: under ~32 GB use NF4 or "
        "model offload (benchmarks/RESULTS.md, issue 14).",
    },
    {
        "slug": "flux-1-dev",
        "name": "FLUX.1 [dev]",
        "backend": Backend.DIFFUSERS,
        "source": "black-forest-labs/FLUX.1-dev",
        "pipeline_class": "FluxPipeline",
        "num_inference_steps": 50,
        "guidance_scale": 3.5,
        "width": 1024,
        "height": 1024,
        "extra_params": {"max_sequence_length": 512},
        "dtype": DType.BF16,
        "min_vram_gb": 24.0,
        "notes": "50 steps as in the benchmark (the diffusers default is 28). "
        "Peak 33.8 GiB allocated (36.3 reserved) at 1024², 50 steps, bf16 on an H200; NF4 fits a 16 GB card "
        "(9.5 s/image) and NF4 + model offload an 8 GB one (14.1 s), verified under memory caps "
        "(benchmarks/RESULTS.md, issue 14).",
    },
    {
        "slug": "hunyuan-image-3",
        "name": "HunyuanImage-3.0",
        "backend": Backend.TRANSFORMERS,
        "source": "tencent/HunyuanImage-3.0",
        "pipeline_class": "",
        "num_inference_steps": 50,
        "guidance_scale": None,
        "width": 1024,
        "height": 1024,
        "load_params": {"attn_implementation": "sdpa", "moe_impl": "eager"},
        "trust_remote_code": True,
        "dtype": DType.BF16,
        "quantization": Quantization.BNB_4BIT,
        "notes": "80B MoE: transformers AutoModelForCausalLM with trust_remote_code and generate_image(); "
        "4-bit (bitsandbytes) to fit one card. A local copy must live in a directory whose name has "
        "no dots (e.g. HunyuanImage-3), or its remote code cannot be imported.",
    },
    {
        "slug": "ernie-image",
        "name": "ERNIE-Image",
        "backend": Backend.DIFFUSERS,
        "source": "baidu/ERNIE-Image",
        "pipeline_class": "ErnieImagePipeline",
        "num_inference_steps": 50,
        "guidance_scale": 4.0,
        "width": 1024,
        "height": 1024,
        "extra_params": {"use_pe": False},
        "dtype": DType.BF16,
        "fallback": "z-image-turbo",
        "notes": "use_pe=False (no prompt enhancer) keeps output repeatable. Needs transformers >= 5. "
        "Falls back to Z-Image Turbo when it runs out of memory even with CPU offload.",
    },
    {
        "slug": "ernie-image-turbo",
        "name": "ERNIE-Image Turbo",
        "backend": Backend.DIFFUSERS,
        "source": "baidu/ERNIE-Image-Turbo",
        "pipeline_class": "ErnieImagePipeline",
        "num_inference_steps": 8,
        "guidance_scale": 1.0,
        "width": 1024,
        "height": 1024,
        "extra_params": {"use_pe": False},
        "dtype": DType.BF16,
        "fallback": "z-image-turbo",
        "notes": "The distilled ERNIE-Image: 8 steps, CFG 1.0, use_pe=False.",
    },
]

_DEFAULTS: dict[str, Any] = {
    "revision": "",
    "extra_params": {},
    "load_params": {},
    "trust_remote_code": False,
    "quantization": Quantization.NONE,
    "offload": Offload.NONE,
    "fast_mode": False,
    "min_vram_gb": None,
    "enabled": True,
}


@transaction.atomic
def image_model_seed_references() -> list[ImageModel]:
    """Register (or restore) the reference systems; running it again changes nothing."""
    seeded: dict[str, ImageModel] = {}
    for entry in REFERENCE_MODELS:
        values = {**_DEFAULTS, **entry}
        slug = values.pop("slug")
        fallback_slug = values.pop("fallback", None)
        values["fallback"] = seeded[fallback_slug] if fallback_slug else None
        model, _ = ImageModel.objects.update_or_create(slug=slug, defaults={**values, "is_reference": True})
        model.full_clean()
        seeded[slug] = model
    return list(seeded.values())


def _demo_model_complete(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


def _build_atomically(*, path: Path, rebuild: bool, build) -> bool:
    """Build into ``path`` unless it is complete; a killed build never leaves a half-written model behind."""
    if not rebuild and _demo_model_complete(path):
        return False
    if path.exists():
        shutil.rmtree(path)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    build(tmp)
    tmp.rename(path)
    return True


def demo_models_build(*, model_dir: Path, rebuild: bool = False) -> list[tuple[ImageModel, bool]]:
    """Build the five demo painters (pipelines that draw the prompt, with known flaws) under ``model_dir``
    and register them. Returns (model, built) pairs; a complete directory is reused (idempotent)."""
    # torch and diffusers: only building the painters loads them (the web process imports this module).
    from generation.engine.demo_draw.pipeline import save_demo_painter

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for demo in DEMO_MODELS:
        path = (model_dir / demo["slug"]).resolve()
        built = _build_atomically(path=path, rebuild=rebuild,
                                  build=lambda tmp, slug=demo["slug"]: save_demo_painter(path=tmp, flaws=PAINTERS[slug]))
        results.append((image_model_register_demo(demo=demo, path=path), built))
    return results


def tiny_models_build(*, model_dir: Path, rebuild: bool = False) -> list[tuple[ImageModel, bool]]:
    """Build the tiny random-weight pipelines of the real architectures (loading tests, benchmarks) and
    register them; like ``demo_models_build``, idempotent."""
    # torch and diffusers: only building the tiny pipelines loads them (the web process imports this module).
    from generation.engine.tiny import TINY_MODELS, build_tiny_pipeline

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for index, demo in enumerate(TINY_MODELS):
        path = (model_dir / demo["slug"]).resolve()
        built = _build_atomically(
            path=path, rebuild=rebuild,
            build=lambda tmp, demo=demo, index=index: build_tiny_pipeline(kind=demo["kind"], path=tmp,
                                                                          seed=demo.get("seed", index)))
        results.append((image_model_register_demo(demo=demo, path=path), built))
    return results


_SPEC_FIELDS = (
    "backend", "pipeline_class", "revision", "dtype", "quantization", "offload", "num_inference_steps",
    "guidance_scale", "width", "height", "extra_params", "load_params", "fast_mode",
)


@transaction.atomic
def image_model_register_demo(*, demo: dict[str, Any], path: Path) -> ImageModel:
    """One demo model as an ImageModel whose source is its local directory."""
    values = {field: demo[field] for field in _SPEC_FIELDS if field in demo}
    load_params = dict(values.get("load_params") or {})
    # our own demo code: its own field (the transformers backend always runs the model's code)
    values["trust_remote_code"] = bool(load_params.pop("trust_remote_code", False)) or demo.get("backend") == "transformers"
    values["load_params"] = load_params
    values.update(
        name=demo.get("name", demo["slug"]),
        source=str(path),
        enabled=True,
        notes=demo.get("notes", f"Tiny offline {demo['kind']} pipeline with random weights (demo only)."),
    )
    model, _ = ImageModel.objects.update_or_create(slug=demo["slug"], defaults=values)
    model.full_clean()
    return model
