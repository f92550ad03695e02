"""Load, render, measure and normalize: the GPU side of evalsite. Never imports Django.

Engine and free_memory (torch) load on first use, so the web process can normalise an uploaded image
(issue 15's image import) or read CONTENT_TYPES without importing torch.
"""

from .normalize import CONTENT_TYPES, EXTENSIONS, FORMATS, normalize_image
from .spec import EngineError, LoadError, ModelSpec, OutOfMemory, RenderOutcome, RenderRequest

__all__ = [
    "CONTENT_TYPES", "EXTENSIONS", "FORMATS", "Engine", "EngineError", "LoadError", "ModelSpec",
    "OutOfMemory", "RenderOutcome", "RenderRequest", "free_memory", "normalize_image",
]


def __getattr__(name: str):
    if name in ("Engine", "free_memory"):
        # The lazy part: engine.py imports torch, which the web process never loads.
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
