"""Load a ModelSpec into something that renders: a diffusers pipeline or a transformers model.

Kept apart from the cache and the render loop so the load path (from_pretrained, dtype,
bitsandbytes, CPU offload, fast mode) can be read and tested on its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .spec import LoadError, ModelSpec

DENOISER_NAMES = ("transformer", "transformer_2", "unet", "prior", "decoder")
FAST_FP8_KEY = "fast_mode_fp8"  # load_params flag: FP8 matmuls in fast mode (Hopper+, torchao)
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class Loaded:
    """A loaded model plus what the engine needs to know about it."""

    spec: ModelSpec
    backend: str
    model: Any
    offload: str  # what was actually applied: "none" | "model" | "sequential"
    size_bytes: int  # estimated resident GPU bytes (the cache's budget unit)
    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    fast_mode_used: bool = False
    notes: list[str] = field(default_factory=list)


def looks_local(source: str) -> bool:
    """A path, not a hub id: absolute, relative with ./ or ~, or an existing directory."""
    return source.startswith(("/", "./", "../", "~")) or os.path.isdir(source)


def module_bytes(module: torch.nn.Module) -> int:
    """Parameter + buffer bytes (quantized weights count at their packed size)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        total += t.numel() * t.element_size()
    return total


def pipeline_modules(pipe: Any) -> dict[str, torch.nn.Module]:
    components = getattr(pipe, "components", None) or {}
    return {name: c for name, c in components.items() if isinstance(c, torch.nn.Module)}


def estimate_bytes(loaded_model: Any, *, backend: str, offload: str) -> int:
    """Resident GPU bytes: the whole pipeline, or only its largest part when offloaded."""
    if backend == "transformers":
        return module_bytes(loaded_model)
    sizes = [module_bytes(m) for m in pipeline_modules(loaded_model).values()]
    if not sizes:
        return 0
    if offload == "model":
        return max(sizes)
    if offload == "sequential":
        return 0
    return sum(sizes)


def quantized_components(*, source: str, revision: str, components: dict[str, Any]) -> list[str]:
    """The denoiser(s) and the big text encoders (not CLIP): where 4/8-bit pays."""
    names = []
    for name, value in components.items():
        if name.startswith("_") or not isinstance(value, (list, tuple)) or len(value) != 2:
            continue
        library, cls = value
        if cls is None:
            continue
        if name in DENOISER_NAMES:
            names.append(name)
        elif name.startswith("text_encoder") and not str(cls).startswith("CLIP"):
            names.append(name)
    return names


def _read_model_index(spec: ModelSpec) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    try:
        return DiffusionPipeline.load_config(spec.source, revision=spec.revision or None)
    except Exception as exc:  # noqa: BLE001 - reported as a load error with the cause
        raise LoadError(f"model {spec.slug!r}: can't read model_index.json from {spec.source!r}: {exc}") from exc


def _pipeline_class(spec: ModelSpec) -> Any:
    import diffusers

    if not spec.pipeline_class:
        return diffusers.DiffusionPipeline
    cls = getattr(diffusers, spec.pipeline_class, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, diffusers.DiffusionPipeline):
        raise LoadError(
            f"model {spec.slug!r}: {spec.pipeline_class!r} is not a diffusers pipeline class "
            f"(diffusers {diffusers.__version__}); leave it empty to let DiffusionPipeline choose"
        )
    return cls


def _check_source(spec: ModelSpec) -> None:
    if looks_local(spec.source):
        path = Path(spec.source).expanduser()
        if not path.is_dir():
            raise LoadError(f"model {spec.slug!r}: local directory {str(path)!r} does not exist")


def load_diffusers(spec: ModelSpec, *, device: str, offload: str) -> tuple[Any, str, list[str]]:
    """from_pretrained with dtype, optional bitsandbytes, then device placement or CPU offload."""
    _check_source(spec)
    cls = _pipeline_class(spec)
    load_params = dict(spec.load_params)
    load_params.pop(FAST_FP8_KEY, None)
    notes: list[str] = []
    kwargs: dict[str, Any] = {"dtype": TORCH_DTYPES[spec.dtype]}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.quantization != "none":
        from diffusers.quantizers import PipelineQuantizationConfig

        names = load_params.pop("components_to_quantize", None)
        if names is None:
            names = quantized_components(source=spec.source, revision=spec.revision, components=_read_model_index(spec))
        backend = "bitsandbytes_4bit" if spec.quantization == "4bit" else "bitsandbytes_8bit"
        quant_kwargs = (
            {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": TORCH_DTYPES[spec.dtype]}
            if spec.quantization == "4bit" else {"load_in_8bit": True}
        )
        kwargs["quantization_config"] = PipelineQuantizationConfig(
            quant_backend=backend, quant_kwargs=quant_kwargs, components_to_quantize=list(names)
        )
        notes.append(f"{backend}: {', '.join(names)}")
    kwargs.update(load_params)
    try:
        pipe = cls.from_pretrained(spec.source, **kwargs)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here is the spec's, reported clearly
        raise LoadError(
            f"model {spec.slug!r}: from_pretrained({spec.source!r}) with {cls.__name__} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if spec.pipeline_class and type(pipe).__name__ != spec.pipeline_class and not isinstance(pipe, cls):
        raise LoadError(f"model {spec.slug!r}: loaded {type(pipe).__name__}, expected {spec.pipeline_class}")
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        # diffusers' .to() knows bitsandbytes: 4-bit modules move, 8-bit ones stay where they were loaded.
        pipe.to(device)
    return pipe, offload, notes


def load_transformers(spec: ModelSpec, *, device: str, offload: str) -> tuple[Any, str, list[str]]:
    """HunyuanImage-3.0 style: AutoModelForCausalLM with its own code and a generate_image()."""
    from transformers import AutoModelForCausalLM

    _check_source(spec)
    notes: list[str] = []
    kwargs: dict[str, Any] = {"trust_remote_code": True, "dtype": TORCH_DTYPES[spec.dtype]}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.quantization != "none":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=TORCH_DTYPES[spec.dtype])
            if spec.quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True)
        )
        notes.append(f"bitsandbytes {spec.quantization} (transformers)")
    if device.startswith("cuda") and (offload != "none" or spec.quantization != "none"):
        kwargs["device_map"] = "auto"  # accelerate spreads layers over GPU and CPU memory
    kwargs.update({k: v for k, v in spec.load_params.items() if k != FAST_FP8_KEY})
    try:
        model = AutoModelForCausalLM.from_pretrained(spec.source, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise LoadError(
            f"model {spec.slug!r}: AutoModelForCausalLM.from_pretrained({spec.source!r}, trust_remote_code=True) "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(getattr(model, "generate_image", None)):
        raise LoadError(f"model {spec.slug!r}: {type(model).__name__} has no generate_image() method")
    if "device_map" not in kwargs:
        model.to(device)
    if callable(getattr(model, "load_tokenizer", None)):
        model.load_tokenizer(spec.source)
    model.eval()
    return model, ("model" if "device_map" in kwargs and offload != "none" else "none"), notes


def _fp8(module: torch.nn.Module, *, device: str) -> str:
    """Dynamic FP8 (per-row) for the denoiser's Linear layers, where the GPU has FP8 tensor cores."""
    if torch.cuda.get_device_capability(device) < (8, 9):
        return "fp8 skipped: needs compute capability 8.9+ (Ada/Hopper)"
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError as exc:
        return f"fp8 skipped: torchao is not importable ({exc})"
    quantize_(module, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))
    return "fp8: torchao Float8DynamicActivationFloat8Weight (per-row) on the denoiser's Linear layers"


def apply_fast_mode(pipe: Any, *, device: str, fp8: bool = False) -> tuple[bool, list[str]]:
    """Opt-in torch.compile of the denoiser: regional where the class lists its repeated blocks.

    Default inductor mode (no max-autotune) keeps the compile short; the compile happens in
    the engine's warm-up call, so its cost shows up as warm-up seconds, not image seconds.
    """
    if not device.startswith("cuda"):
        return False, ["fast mode skipped: torch.compile is only used on CUDA"]
    for name in DENOISER_NAMES:
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            break
    else:
        return False, ["fast mode skipped: no transformer/unet to compile"]
    notes = [_fp8(module, device=device)] if fp8 else []
    if getattr(module, "_repeated_blocks", None):
        module.compile_repeated_blocks(fullgraph=True)
        notes.append(f"fast mode: compile_repeated_blocks on {name} ({', '.join(module._repeated_blocks)})")
    else:
        setattr(pipe, name, torch.compile(module, fullgraph=False))
        notes.append(f"fast mode: torch.compile({name})")
    return True, notes


def load(spec: ModelSpec, *, device: str, offload: str | None = None) -> Loaded:
    """Load a spec; offload overrides spec.offload (used for the OOM retry)."""
    offload = offload or spec.offload
    if spec.backend == "transformers":
        model, applied, notes = load_transformers(spec, device=device, offload=offload)
    else:
        model, applied, notes = load_diffusers(spec, device=device, offload=offload)
    fast = False
    if spec.fast_mode and spec.backend == "diffusers":
        if applied == "none":
            fast, fast_notes = apply_fast_mode(model, device=device, fp8=bool(spec.load_params.get(FAST_FP8_KEY)))
            notes.extend(fast_notes)
        else:
            notes.append("fast mode skipped: not combined with CPU offload")
    return Loaded(
        spec=spec, backend=spec.backend, model=model, offload=applied,
        size_bytes=estimate_bytes(model, backend=spec.backend, offload=applied),
        fast_mode_used=fast, notes=notes,
    )


def describe(loaded: Loaded) -> dict[str, Any]:
    return json.loads(json.dumps({
        "class": type(loaded.model).__name__, "offload": loaded.offload, "size_bytes": loaded.size_bytes,
        "load_seconds": loaded.load_seconds, "warmup_seconds": loaded.warmup_seconds,
        "fast_mode_used": loaded.fast_mode_used, "notes": loaded.notes,
    }))
