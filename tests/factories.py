"""factory_boy factories for every model; tests build data through these."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, NamedTuple

import factory
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image, ImageDraw

from generation.models import Generation, GenerationStatus, ImageModel, Sweep
from prompts.models import Prompt, PromptSuite
from ratings.models import Criterion, Panelist, Study


def staff_user(username: str = "staff", *, roles: tuple[str, ...] = ()):
    """A staff account in the given role groups (evalsite.access.ROLES); no password (hashing is slow)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from evalsite.access import roles_ensure

    roles_ensure()
    user = get_user_model().objects.create(username=username, is_staff=True)
    user.groups.set(Group.objects.filter(name__in=roles))
    return user


class PromptSuiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptSuite

    name = factory.Sequence(lambda n: f"suite-{n}")


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    suite = factory.SubFactory(PromptSuiteFactory)
    position = factory.Sequence(lambda n: n + 1)
    text = factory.Sequence(lambda n: f"a photo of object number {n}")
    category = "General"


class ImageModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageModel

    slug = factory.Sequence(lambda n: f"model-{n}")
    name = factory.Sequence(lambda n: f"Model {n}")
    source = factory.Sequence(lambda n: f"org/model-{n}")
    pipeline_class = "FluxPipeline"
    num_inference_steps = 4
    width = 64
    height = 64


class SweepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sweep

    suite = factory.SubFactory(PromptSuiteFactory)
    seeds = [0]
    canvas_width = 64
    canvas_height = 64


class GenerationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Generation

    sweep = factory.SubFactory(SweepFactory)
    prompt = factory.SubFactory(PromptFactory, suite=factory.SelfAttribute("..sweep.suite"))
    model = factory.SubFactory(ImageModelFactory)
    seed = 0
    status = GenerationStatus.DONE
    width = 64
    height = 64
    finished_at = factory.LazyFunction(timezone.now)


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    name = factory.Sequence(lambda n: f"study-{n}")
    sweep = factory.SubFactory(SweepFactory)


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Criterion

    study = factory.SubFactory(StudyFactory)
    key = factory.Sequence(lambda n: f"criterion-{n}")
    name = factory.Sequence(lambda n: f"Criterion {n}")
    question = "How good is it?"


class PanelistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Panelist

    study = factory.SubFactory(StudyFactory)
    pseudonym = factory.Sequence(lambda n: f"panelist-{n}")



def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
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


class RenderedSweep(NamedTuple):
    sweep: Sweep
    models: list[ImageModel]
    prompts: list[Prompt]
    generations: list[Generation]  # model-major: every prompt (and seed) of the first model first


def make_sweep(*, n_models: int = 3, n_prompts: int = 4, seeds: Sequence[int] = (0,), text_prompts: int = 1,
               names: Sequence[str] | None = None, model_kwargs: Sequence[dict[str, Any]] | None = None,
               prompt_kwargs: Sequence[dict[str, Any]] | None = None, canvas: int = 64, gpu: str = "NVIDIA H100",
               **sweep_kwargs: Any) -> RenderedSweep:
    """The test sweep: every prompt × model × seed rendered, as a GPU worker leaves it.

    Each image is a distinct ``canvas``-sized PNG in storage, with seconds (1.0 + model + 0.1 × prompt),
    the GPU and peak VRAM ((model + 1) GiB allocated, + 1 reserved). Models are "Model A", "Model B"…
    (``names``; ``model_kwargs`` per model override any field). The first ``text_prompts`` prompts ask
    for text with a quote, a comma, a second line and a non-ASCII letter (what exports must keep);
    ``prompt_kwargs`` per prompt override any field. ``sweep_kwargs`` go to SweepFactory (``suite__name=…``).
    """
    sweep = SweepFactory(seeds=list(seeds), canvas_width=canvas, canvas_height=canvas, **sweep_kwargs)
    if model_kwargs is not None:
        n_models = len(model_kwargs)
    names = list(names) if names is not None else [f"Model {chr(65 + i)}" for i in range(n_models)]
    models = [ImageModelFactory(**{"name": name, "slug": f"model-{chr(97 + i)}-{sweep.pk}", "num_inference_steps": 28,
                                   "guidance_scale": 3.5, "width": 1024, "height": 1024,
                                   **(model_kwargs[i] if model_kwargs else {})})
              for i, name in enumerate(names)]
    sweep.image_models.set(models)
    if prompt_kwargs is not None:
        n_prompts = len(prompt_kwargs)
    prompts = []
    for j in range(n_prompts):
        text = ({"text": f'a shop sign that says "OPEN, {j}"\nsecond line ü', "expected_text": f"OPEN, {j}",
                 "category": "Text"} if j < text_prompts else {})
        prompts.append(PromptFactory(suite=sweep.suite, **{**text, **(prompt_kwargs[j] if prompt_kwargs else {})}))
    generations = [
        GenerationFactory(sweep=sweep, prompt=prompt, model=model, seed=seed, width=canvas, height=canvas,
                          image=ContentFile(png_bytes((40 * mi % 256, 30 * pj % 256, seed % 256), (canvas, canvas)),
                                            name="x.png"),
                          seconds=1.0 + mi + 0.1 * pj, gpu_name=gpu, device="cuda",
                          peak_vram_allocated=(mi + 1) * 2**30, peak_vram_reserved=(mi + 2) * 2**30)
        for mi, model in enumerate(models) for pj, prompt in enumerate(prompts) for seed in seeds
    ]
    return RenderedSweep(sweep, models, prompts, generations)


def vram_report(*, min_card=(24, "nf4"), gpu="NVIDIA H200") -> dict:
    """A VRAM profile report of the shape generation.engine.profile.profile returns (what a GPU run stores)."""
    cards = [{"card_gb": 8, "cap_gib": 7.3, "tried": [], "setting": None},
             {"card_gb": 24, "cap_gib": 23.3, "tried": [], "setting": "nf4", "seconds": 5.42,
              "peak_allocated_gib": 6.7, "peak_reserved_gib": 7.1},
             {"card_gb": 48, "cap_gib": 47.3, "tried": [], "setting": "bf16", "seconds": 5.12,
              "peak_allocated_gib": 22.7, "peak_reserved_gib": 23.9}]
    return {"slug": "m", "gpu_name": gpu, "context_gib": 0.7, "steps": 28, "width": 1024, "height": 1024,
            "settings": {}, "cards": cards,
            "min_card": {"card_gb": min_card[0], "setting": min_card[1]} if min_card else None}
