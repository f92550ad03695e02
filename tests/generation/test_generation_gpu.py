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
