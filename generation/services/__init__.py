"""Writes of the generation app (registry, sweeps, rendering). Import from here."""

from .liveness import (
    Liveness,
    WorkerMonitor,
    generations_heartbeat,
    vram_profiles_reconcile,
    watchdog_limit,
    worker_liveness,
)
from .registry import (
    REFERENCE_MODELS,
    demo_models_build,
    image_model_register_demo,
    image_model_seed_references,
    tiny_models_build,
)
from .rendering import (
    ChunkResult,
    engine_get,
    generation_chunk_render,
    generation_fail,
    generation_save_outcome,
    generations_claim,
    image_model_spec,
    worker_name,
)
from .sweeps import (
    SweepInvalid,
    render_chunks,
    sweep_cancel,
    sweep_canvas_default,
    sweep_create,
    sweep_enqueue,
    sweep_prompts_select,
    sweep_reconcile,
    sweep_retry_failed,
    sweep_status_refresh,
    sweeps_reconcile,
)
from .vram import (
    VramProfileInvalid,
    vram_cards_parse,
    vram_profile_create,
    vram_profile_request,
    vram_profile_run,
    vram_settings_check,
)

__all__ = [
    "REFERENCE_MODELS", "ChunkResult", "SweepInvalid", "WorkerMonitor", "demo_models_build", "engine_get",
    "generation_chunk_render", "generation_fail", "generation_save_outcome", "generations_claim",
    "image_model_register_demo", "image_model_seed_references", "image_model_spec", "render_chunks",
    "sweep_cancel", "sweep_canvas_default", "sweep_create", "sweep_prompts_select", "sweep_enqueue", "sweep_reconcile", "sweep_retry_failed", "sweep_status_refresh", "sweeps_reconcile", "tiny_models_build",
    "VramProfileInvalid", "vram_cards_parse", "vram_profile_create", "vram_profile_request", "vram_profile_run",
    "vram_settings_check",
    "Liveness", "generations_heartbeat", "vram_profiles_reconcile", "watchdog_limit", "worker_liveness", "worker_name",
]
