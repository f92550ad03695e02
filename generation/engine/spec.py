"""What the engine is asked to do and what it answers: plain dataclasses, no Django.

The Django side (generation.services) turns an ImageModel row into a ModelSpec; the
engine never sees a database row, so it can run and be benchmarked alone on a GPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

BACKENDS = ("diffusers", "transformers")
DTYPES = ("bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "8bit", "4bit")
OFFLOADS = ("none", "model", "sequential")


def looks_local(source: str) -> bool:
    """A model source that is a path, not a hub id: absolute, relative with ./ or ~, or an existing directory."""
    return source.startswith(("/", "./", "../", "~")) or os.path.isdir(source)


class EngineError(Exception):
    """Base of the errors the engine raises on purpose."""


class LoadError(EngineError):
    """The spec can't be loaded (missing path, wrong class, bad settings): fail that model, not the others."""


class OutOfMemory(EngineError):
    """CUDA ran out of memory even after a reload with model CPU offload: use the fallback model."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to load one model and render with its settings."""

    slug: str
    source: str
    backend: str = "diffusers"
    pipeline_class: str = ""  # "" = DiffusionPipeline picks the class from model_index.json
    revision: str = ""
    dtype: str = "bfloat16"
    quantization: str = "none"
    offload: str = "none"
    num_inference_steps: int = 28
    guidance_scale: float | None = None  # None = not passed; 0.0 is passed (Z-Image Turbo needs it)
    width: int = 1024
    height: int = 1024
    extra_params: dict[str, Any] = field(default_factory=dict)
    load_params: dict[str, Any] = field(default_factory=dict)
    fast_mode: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {DTYPES}, not {self.dtype!r}")
        if self.quantization not in QUANTIZATIONS:
            problems.append(f"quantization must be one of {QUANTIZATIONS}, not {self.quantization!r}")
        if self.offload not in OFFLOADS:
            problems.append(f"offload must be one of {OFFLOADS}, not {self.offload!r}")
        if self.num_inference_steps < 1:
            problems.append("num_inference_steps must be >= 1")
        if self.width < 8 or self.height < 8:
            problems.append("width and height must be >= 8")
        if not self.source:
            problems.append("source is empty")
        if problems:
            raise LoadError(f"model {self.slug!r}: " + "; ".join(problems))

    def cache_key(self) -> str:
        """What decides whether a loaded pipeline can be reused (call settings don't)."""
        return json.dumps(
            [self.backend, self.source, self.pipeline_class, self.revision, self.dtype,
             self.quantization, self.offload, self.load_params, self.fast_mode],
            sort_keys=True, default=str,
        )

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON, for the Generation's settings snapshot."""
        return asdict(self)


@dataclass(frozen=True)
class RenderRequest:
    """One image to render: an opaque key the caller maps back to its row, a prompt, a seed."""

    key: str
    prompt: str
    seed: int


@dataclass
class RenderOutcome:
    """One rendered image and how it went. VRAM fields are None on a CPU (not applicable)."""

    key: str
    image: Any = None  # PIL.Image.Image | None
    seconds: float | None = None
    peak_vram_allocated: int | None = None
    peak_vram_reserved: int | None = None
    device: str = ""
    gpu_name: str = ""
    offload_used: str = "none"
    native_width: int | None = None
    native_height: int | None = None
    error: str = ""
    fast_mode_used: bool = False
    seed: int | None = None
    prompt: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.image is not None
