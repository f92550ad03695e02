"""The render service on CUDA (run on the GPU machine: `pytest -m gpu tests/generation`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.django_db,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_chunk_render_on_cuda_records_gpu_measurements(suite, tiny_models):
    from generation.engine import Engine
    from generation.models import Generation, GenerationStatus
    from generation.services import generation_chunk_render, render_chunks, sweep_create

    sweep = sweep_create(suite=suite, image_models=[tiny_models["tiny-sd3"], tiny_models["tiny-flux"]], seeds=1)
    engine = Engine(device="cuda")
    rows = sweep.generations.order_by("model__name", "model_id", "prompt__position", "seed")
    for model_id, ids in render_chunks(generations=rows):
        generation_chunk_render(sweep_id=sweep.pk, model_id=model_id, generation_ids=ids, engine=engine)
    for g in Generation.objects.filter(sweep=sweep):
        assert g.status == GenerationStatus.DONE, g.error
        assert g.device == "cuda" and g.gpu_name == torch.cuda.get_device_name(0)
        assert 0 < g.peak_vram_allocated <= g.peak_vram_reserved
        assert g.settings_snapshot["environment"]["gpu_total_memory"] > 0
        assert g.seconds > 0 and g.offload_used == "none"


def test_the_memory_setting_caps_the_worker_engine_and_is_its_ceiling(settings, monkeypatch):
    """EVALSITE_GPU_MEMORY_GIB on CUDA: the worker's Engine is capped there, and no later cap goes above it."""
    from generation.services import rendering

    settings.GPU_MEMORY_GIB = 2.0
    settings.GPU_VRAM_BUDGET_GB = 0.0
    monkeypatch.setattr(rendering, "_engine", None)
    engine = rendering.engine_get()
    try:
        assert engine.memory_cap_bytes == engine.memory_ceiling_bytes == 2 * 2**30
        assert engine.vram_budget_bytes == int(0.9 * 2 * 2**30)
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(3 * 2**30, dtype=torch.uint8, device="cuda")
        engine.set_memory_cap(None)  # back to the ceiling, not the whole card
        assert engine.memory_cap_bytes == 2 * 2**30
        engine.set_memory_cap(40 * 2**30)
        assert engine.memory_cap_bytes == 2 * 2**30
        engine.set_memory_cap(2**30)
        assert engine.memory_cap_bytes == 2**30
    finally:
        engine.close()
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def test_vram_profile_run_on_cuda_stores_a_report(tiny_models):
    """The service end to end on the GPU with a tiny model: a done row holding profile()'s report."""
    from generation import selectors
    from generation.services import vram_profile_create, vram_profile_run

    model = tiny_models["tiny-flux"]
    profile = vram_profile_create(image_model=model, cards=[8, 16], setting_names=["bf16", "model offload"])
    profile = vram_profile_run(profile_id=profile.pk)
    assert profile.status == "done", profile.error
    assert profile.gpu_name == torch.cuda.get_device_name(0) == profile.report["gpu_name"]
    assert profile.report["min_card"] == {"card_gb": 8, "setting": profile.report["cards"][0]["setting"]}
    assert [r["card_gb"] for r in selectors.vram_profile_fits(profile=profile)] == [8, 16]
    assert selectors.vram_profile_latest_done(image_model=model) == profile
