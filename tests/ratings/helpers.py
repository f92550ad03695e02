"""Test data: rendered sweeps with real (tiny) PNG images written straight into Generation.image."""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from PIL import Image

from generation.models import ImageModel
from tests.factories import GenerationFactory, ImageModelFactory, PromptFactory, SweepFactory

CANVAS = (64, 64)


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = CANVAS) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_sweep(*, n_models: int = 3, n_prompts: int = 4, seeds=(0,), text_prompts: int = 1,
               model_kwargs: list[dict] | None = None):
    """A rendered sweep: every prompt x model x seed has a distinct 64x64 PNG."""
    sweep = SweepFactory(seeds=list(seeds))
    models: list[ImageModel] = []
    for i in range(n_models):
        kwargs = (model_kwargs or [{}] * n_models)[i] if model_kwargs else {}
        models.append(ImageModelFactory(**kwargs))
    sweep.image_models.set(models)
    prompts = []
    for j in range(n_prompts):
        if j < text_prompts:
            prompts.append(PromptFactory(suite=sweep.suite, text=f'a shop sign that says "OPEN {j}"',
                                         expected_text=f"OPEN {j}", category="Text"))
        else:
            prompts.append(PromptFactory(suite=sweep.suite))
    gens = []
    for mi, model in enumerate(models):
        for pj, prompt in enumerate(prompts):
            for seed in seeds:
                g = GenerationFactory(sweep=sweep, prompt=prompt, model=model, seed=seed)
                g.image.save("x.png", ContentFile(png_bytes((40 * mi % 256, 30 * pj % 256, seed % 256))), save=True)
                gens.append(g)
    return sweep, models, prompts, gens
