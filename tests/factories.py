"""factory_boy factories for every model; tests build data through these."""

from __future__ import annotations

import factory
from django.utils import timezone

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
