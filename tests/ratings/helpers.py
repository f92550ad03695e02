"""Test data: rendered sweeps with real (tiny) PNG images written straight into Generation.image."""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from generation.models import ImageModel
from tests.factories import GenerationFactory, ImageModelFactory, PromptFactory, SweepFactory

CANVAS = (64, 64)  # the sweep factory's canvas


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = CANVAS) -> bytes:
    """A small picture (sky, ground, a sun) in colours that tell test images apart."""
    w, h = size
    image = Image.new("RGB", size, (120 + color[0] // 3, 170, 220 - color[1] // 3))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, int(h * 0.65), w, h], fill=(60 + color[1] // 2, 120, 50 + color[2] // 2))
    r = max(3, w // 8)
    cx, cy = int(w * (0.25 + 0.5 * (color[0] % 97) / 97)), int(h * 0.3)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 200 + color[2] % 50, 60))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
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
