"""Load a ModelSpec into something that renders: a diffusers pipeline or a transformers model.

Kept apart from the cache and the render loop so the load path (from_pretrained, dtype,
bitsandbytes, CPU offload, fast mode) can be read and tested on its own.
"""

from __future__ import annotations

import contextlib
import importlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import hunyuan3
from .compat import install_remote_code_shims
from .spec import LoadError, ModelSpec, looks_local

DENOISER_NAMES = ("transformer", "transformer_2", "unet", "prior", "decoder")
FAST_FP8_KEY = "fast_mode_fp8"  # load_params flag: FP8 matmuls in fast mode (Hopper+, torchao)
QUANT_SKIP_KEY = "quantization_skip_modules"  # load_params: modules bitsandbytes leaves unquantized (transformers)
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class LoadOutOfMemory(torch.OutOfMemoryError):
    """CUDA ran out of memory inside from_pretrained: the engine's OOM path (offload retry, fallback),
    never a LoadError, because the spec is fine and only the card is too small for this setting."""


def is_oom(exc: BaseException | None) -> bool:
    """torch's OutOfMemoryError anywhere in the chain (libraries wrap it), or its message."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch.OutOfMemoryError):
            return True
        if isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def release(exc: BaseException | None) -> None:
    """Clear the locals of the finished frames an exception's tracebacks still hold.

    A failed from_pretrained leaves its half-built modules in those frames; whoever keeps the
    exception (a log, a test, the caller's `raise ... from`) would otherwise keep their memory.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


@contextlib.contextmanager
def no_allocator_warmup(enabled: bool) -> Iterator[list[str]]:
    """Skip diffusers'/transformers' caching-allocator warm-up inside from_pretrained.

    That warm-up is one torch.empty of about half the weights' bytes on the GPU, made to speed
    up loading. When the model is CPU-offloaded afterwards, the block stays reserved by the
    caching allocator and is what pushed the load peak above the render peak (FLUX NF4 +
    offload: ~10.4 GiB loading vs 7.6 GiB rendering). Private library functions: patched only
    where they exist, and reported in the load notes.
    """
    notes: list[str] = []
    patched: list[tuple[Any, str, Any]] = []
    if enabled:
        for module_name, attr in (("diffusers.models.modeling_utils", "_caching_allocator_warmup"),
                                  ("transformers.modeling_utils", "caching_allocator_warmup")):
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if callable(getattr(module, attr, None)):
                patched.append((module, attr, getattr(module, attr)))
                setattr(module, attr, lambda *args, **kwargs: None)
        if patched:
            notes.append("caching-allocator warm-up skipped while loading (the model is offloaded)")
    try:
        yield notes
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


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
    load_peak_allocated: int | None = None  # CUDA bytes at the load's peak (None on a CPU)
    load_peak_reserved: int | None = None
    fast_mode_used: bool = False
    notes: list[str] = field(default_factory=list)


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


def quantized_components(*, components: dict[str, Any]) -> list[str]:
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
    # Each backend imports only its library (diffusers or transformers), each seconds to import.
    from diffusers import DiffusionPipeline

    try:
        return DiffusionPipeline.load_config(spec.source, revision=spec.revision or None)
    except Exception as exc:  # noqa: BLE001 - reported as a load error with the cause
        raise LoadError(f"model {spec.slug!r}: can't read model_index.json from {spec.source!r}: {exc}") from exc


def _pipeline_class(spec: ModelSpec) -> Any:
    # Each backend imports only its library (diffusers or transformers), each seconds to import.
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


def pipeline_quantization(spec: ModelSpec, names: list[str]) -> Any:
    """diffusers' PipelineQuantizationConfig for bitsandbytes NF4 / 8-bit on the named components."""
    # Only a quantized diffusers model needs it (see above).
    from diffusers.quantizers import PipelineQuantizationConfig

    backend = "bitsandbytes_4bit" if spec.quantization == "4bit" else "bitsandbytes_8bit"
    quant_kwargs = (
        {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": TORCH_DTYPES[spec.dtype]}
        if spec.quantization == "4bit" else {"load_in_8bit": True}
    )
    return PipelineQuantizationConfig(quant_backend=backend, quant_kwargs=quant_kwargs,
                                      components_to_quantize=list(names))


def _failed(spec: ModelSpec, what: str, exc: Exception) -> Exception:
    """The error to raise for a failed from_pretrained: CUDA OOM stays OOM, the rest is a LoadError."""
    message = f"model {spec.slug!r}: {what} failed: {type(exc).__name__}: {exc}"
    if is_oom(exc):
        return LoadOutOfMemory(f"CUDA out of memory during {what} (loading): {exc}")
    return LoadError(message)


def _component_class(library: str, class_name: str) -> Any:
    try:
        return getattr(importlib.import_module(library), class_name)
    except (ImportError, AttributeError) as exc:
        raise LoadError(f"component class {library}.{class_name} is not importable: {exc}") from exc


def load_components_parked(spec: ModelSpec, *, names: list[str], quant: Any, index: dict[str, Any],
                           kwargs: dict[str, Any], device: str) -> dict[str, Any]:
    """Quantized components one at a time, each moved to the CPU before the next is loaded.

    bitsandbytes quantizes on the GPU, so a pipeline-wide from_pretrained holds every quantized
    component there at once before CPU offload can move them; with offload the render needs only
    the largest. 4-bit modules move to the CPU and back (what enable_model_cpu_offload does);
    8-bit ones can't, so they stay on the GPU as diffusers' offload leaves them.
    """
    loaded: dict[str, Any] = {}
    for name in names:
        library, class_name = index[name]
        cls = _component_class(library, class_name)
        component_kwargs = {k: v for k, v in kwargs.items() if k in ("dtype", "revision", "variant")}
        component_kwargs["quantization_config"] = quant._resolve_quant_config(
            is_diffusers=library == "diffusers", module_name=name)
        what = f"{class_name}.from_pretrained({spec.source!r}, subfolder={name!r}) [{spec.quantization}]"
        try:
            with no_allocator_warmup(True):
                module = cls.from_pretrained(spec.source, subfolder=name, **component_kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _failed(spec, what, exc) from exc
        if spec.quantization == "4bit" and device.startswith("cuda"):
            module.to("cpu")
            torch.cuda.empty_cache()
        loaded[name] = module
    return loaded


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
    parked: dict[str, Any] = {}
    if spec.quantization != "none":
        names = load_params.pop("components_to_quantize", None)
        index = _read_model_index(spec)
        if names is None:
            names = quantized_components(components=index)
        quant = pipeline_quantization(spec, list(names))
        notes.append(f"{quant.quant_backend}: {', '.join(names)}")
        if offload != "none":
            parked = load_components_parked(spec, names=list(names), quant=quant, index=index,
                                            kwargs=kwargs, device=device)
            notes.append("quantized components loaded one at a time and parked on the CPU before offload")
        else:
            kwargs["quantization_config"] = quant
    kwargs.update(load_params)
    kwargs.update(parked)
    what = f"from_pretrained({spec.source!r}) with {cls.__name__}"
    try:
        with no_allocator_warmup(offload != "none") as warmup_notes:
            pipe = cls.from_pretrained(spec.source, **kwargs)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here is the spec's, reported clearly
        raise _failed(spec, what, exc) from exc
    notes.extend(warmup_notes)
    if spec.pipeline_class and type(pipe).__name__ != spec.pipeline_class and not isinstance(pipe, cls):
        raise LoadError(f"model {spec.slug!r}: loaded {type(pipe).__name__}, expected {spec.pipeline_class}")
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    try:
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            # diffusers' .to() knows bitsandbytes: 4-bit modules move, 8-bit ones stay where they were loaded.
            pipe.to(device)
    except torch.OutOfMemoryError as exc:
        raise LoadOutOfMemory(f"CUDA out of memory moving {cls.__name__} to {device} (loading): {exc}") from exc
    return pipe, offload, notes


def quantization_skip_modules(spec: ModelSpec) -> list[str] | None:
    """Modules bitsandbytes leaves in the model's dtype: load_params["quantization_skip_modules"], else
    what the architecture needs (HunyuanImage-3.0: hunyuan3.QUANT_SKIP_MODULES), else None."""
    skip = spec.load_params.get(QUANT_SKIP_KEY)
    if skip is not None:
        if not isinstance(skip, (list, tuple)) or not all(isinstance(n, str) and n for n in skip):
            raise LoadError(f"model {spec.slug!r}: load_params[{QUANT_SKIP_KEY!r}] must be a list of module names")
        return list(skip) or None
    # transformers only for the transformers backend (see load_transformers)
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(spec.source, revision=spec.revision or None)
    except Exception:  # noqa: BLE001 - no readable config.json: from_pretrained reports that itself
        return None
    if hunyuan3.ARCHITECTURE in (config.get("architectures") or []):
        return list(hunyuan3.QUANT_SKIP_MODULES)
    return None


def transformers_quantization(spec: ModelSpec) -> Any:
    """BitsAndBytesConfig (NF4 or 8-bit) for the transformers backend, keeping quantization_skip_modules
    unquantized."""
    # transformers only for the transformers backend (see load_transformers)
    from transformers import BitsAndBytesConfig

    skip = quantization_skip_modules(spec)
    if spec.quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=TORCH_DTYPES[spec.dtype], llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_transformers(spec: ModelSpec, *, device: str, offload: str,
                      max_gpu_bytes: int | None = None) -> tuple[Any, str, list[str]]:
    """HunyuanImage-3.0 style: AutoModelForCausalLM with its own code and a generate_image()."""
    # Each backend imports only its library (diffusers or transformers), each seconds to import.
    from transformers import AutoModelForCausalLM

    _check_source(spec)
    notes: list[str] = install_remote_code_shims()
    kwargs: dict[str, Any] = {"trust_remote_code": True, "dtype": TORCH_DTYPES[spec.dtype]}
    if spec.revision:
        kwargs["revision"] = spec.revision
    load_params = {k: v for k, v in spec.load_params.items() if k != FAST_FP8_KEY}
    if spec.quantization != "none":
        kwargs["quantization_config"] = transformers_quantization(spec)
        skipped = kwargs["quantization_config"].llm_int8_skip_modules
        notes.append(f"bitsandbytes {spec.quantization} (transformers)"
                     + (f", not quantized: {', '.join(skipped)}" if skipped else ""))
    load_params.pop(QUANT_SKIP_KEY, None)
    if device.startswith("cuda") and (offload != "none" or spec.quantization != "none"):
        kwargs["device_map"] = "auto"  # accelerate spreads layers over GPU and CPU memory
        if max_gpu_bytes:
            # accelerate sizes "auto" from the driver's free memory, which ignores the engine's cap
            index = torch.device(device).index or 0
            kwargs["max_memory"] = {index: int(max_gpu_bytes), "cpu": 2**40}
    kwargs.update(load_params)
    what = f"AutoModelForCausalLM.from_pretrained({spec.source!r}, trust_remote_code=True)"
    try:
        with no_allocator_warmup(offload != "none") as warmup_notes:
            model = AutoModelForCausalLM.from_pretrained(spec.source, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _failed(spec, what, exc) from exc
    notes.extend(warmup_notes)
    if not callable(getattr(model, "generate_image", None)):
        raise LoadError(f"model {spec.slug!r}: {type(model).__name__} has no generate_image() method")
    if "device_map" not in kwargs:
        try:
            model.to(device)
        except torch.OutOfMemoryError as exc:
            raise LoadOutOfMemory(f"CUDA out of memory moving {type(model).__name__} to {device} (loading): {exc}") from exc
    if callable(getattr(model, "load_tokenizer", None)):
        model.load_tokenizer(spec.source)
    model.eval()
    return model, ("model" if "device_map" in kwargs and offload != "none" else "none"), notes


def _fp8(module: torch.nn.Module, *, device: str) -> str:
    """Dynamic FP8 (per-row) for the denoiser's Linear layers, where the GPU has FP8 tensor cores."""
    if torch.cuda.get_device_capability(device) < (8, 9):
        return "fp8 skipped: needs compute capability 8.9+ (Ada/Hopper)"
    try:
        # Optional: torchao is the fast-mode extra (requirements-fast.txt); its absence is a note, not an error.
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


def load(spec: ModelSpec, *, device: str, offload: str | None = None, max_gpu_bytes: int | None = None) -> Loaded:
    """Load a spec; offload overrides spec.offload (used for the OOM retry)."""
    offload = offload or spec.offload
    if spec.backend == "transformers":
        model, applied, notes = load_transformers(spec, device=device, offload=offload, max_gpu_bytes=max_gpu_bytes)
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
