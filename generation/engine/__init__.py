"""Load, render, measure and normalize: the GPU side of evalsite. Never imports Django."""

from .engine import Engine, free_memory
from .normalize import CONTENT_TYPES, EXTENSIONS, FORMATS, normalize_image
from .spec import EngineError, LoadError, ModelSpec, OutOfMemory, RenderOutcome, RenderRequest

__all__ = [
    "CONTENT_TYPES", "EXTENSIONS", "FORMATS", "Engine", "EngineError", "LoadError", "ModelSpec",
    "OutOfMemory", "RenderOutcome", "RenderRequest", "free_memory", "normalize_image",
]
