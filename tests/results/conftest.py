"""Rendered sweeps and studies for the results tests (image files are not needed: only names)."""

from __future__ import annotations

import pytest

from ratings.services import study_create
from tests.factories import GenerationFactory, ImageModelFactory, PromptFactory, SweepFactory


def make_rendered_sweep(*, n_models: int = 3, n_prompts: int = 6, text_prompts: int = 2, gpu: str = "NVIDIA H100",
                        names: list[str] | None = None):
    """Every prompt × model rendered once, with timing and VRAM like a GPU worker records them."""
    sweep = SweepFactory(seeds=[0])
    names = names or [f"Model {chr(65 + i)}" for i in range(n_models)]
    models = [ImageModelFactory(name=names[i], slug=f"model-{chr(97 + i)}-{sweep.pk}",
                                num_inference_steps=28, guidance_scale=3.5, width=1024, height=1024)
              for i in range(len(names))]
    sweep.image_models.set(models)
    prompts = []
    for j in range(n_prompts):
        if j < text_prompts:
            prompts.append(PromptFactory(suite=sweep.suite, text=f'a shop sign that says "OPEN, {j}"\nsecond line ü',
                                         expected_text=f"OPEN, {j}", category="Text"))
        else:
            prompts.append(PromptFactory(suite=sweep.suite, category="Photo"))
    for mi, model in enumerate(models):
        for pj, prompt in enumerate(prompts):
            GenerationFactory(sweep=sweep, prompt=prompt, model=model, seed=0, image=f"g/te/{sweep.pk}-{mi}-{pj}.png",
                              seconds=1.0 + mi + 0.1 * pj, gpu_name=gpu, device="cuda",
                              peak_vram_allocated=(mi + 1) * 2**30, peak_vram_reserved=(mi + 2) * 2**30)
    return sweep, models, prompts


@pytest.fixture
def study_factory(db):
    def make(*, mode: str = "both", n_models: int = 3, n_prompts: int = 6, k: int = 2, gold: bool = True,
             names: list[str] | None = None, **kw):
        sweep, models, prompts = make_rendered_sweep(n_models=n_models, n_prompts=n_prompts, names=names)
        study = study_create(sweep=sweep, name=f"Study {sweep.pk}", mode=mode, ratings_per_item=k, gold_enabled=gold)
        for field, value in kw.items():
            setattr(study, field, value)
        if kw:
            study.save()
        return study, models, prompts

    return make
