"""Issue 12 (1): side channels on a rendered demo study, measured as the issue's crawl measured them.

* Size: a nearest-neighbour guess of the model from the image response's Content-Length (leave-one-out)
  must be within 5 points of chance, for PNG, JPEG and WebP; the same guess on the stored files (what
  used to be served) shows the classifier has the power to find a leak on these very images.
* Order: panelists rating alone get sequences whose rotation blocks and "next is the model not seen
  lately" guess match shuffles of their own sequences (chance) within 5 points.
"""

from __future__ import annotations

import random
import re
import struct
from collections import Counter

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client
from PIL import Image

from generation.engine.normalize import normalize_image
from generation.models import Generation, GenerationStatus, Sweep
from prompts.models import PromptSuite
from ratings import services
from ratings.models import Assignment
from ratings.selectors import criteria_for_prompt

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

N_PROMPTS = 8
CANVAS = 128


@pytest.fixture(scope="module")
def cpu_engine():
    from generation.engine import Engine

    return Engine(device="cpu")


@pytest.fixture
def demo_sweeps(tmp_path, cpu_engine):
    """The five demo painters render the first prompts of the sample suite (PNG, the worker's path);
    JPEG and WebP sweeps hold the same pixels normalised the way the worker would store them."""
    from generation.services import demo_models_build, generation_chunk_render, sweep_create

    call_command("import_prompts", str(settings.BASE_DIR / "samples" / "sample_suite.csv"), suite="sample")
    suite = PromptSuite.objects.get(name="sample")
    suite.prompts.filter(position__gt=N_PROMPTS).delete()
    models = [m for m, _ in demo_models_build(model_dir=tmp_path / "models")]
    png = sweep_create(suite=suite, image_models=models, seeds=[0], canvas_width=CANVAS, canvas_height=CANVAS,
                       image_format="png", name="side-png")
    for model in models:
        ids = list(Generation.objects.filter(sweep=png, model=model).values_list("id", flat=True))
        generation_chunk_render(sweep_id=png.pk, model_id=model.pk, generation_ids=ids, engine=cpu_engine)
    sweeps = {"png": png}
    for fmt in ("jpeg", "webp"):
        other = Sweep.objects.create(suite=suite, seeds=[0], canvas_width=CANVAS, canvas_height=CANVAS,
                                     image_format=fmt, name=f"side-{fmt}", status="done")
        other.image_models.set(models)
        for g in Generation.objects.filter(sweep=png, status=GenerationStatus.DONE):
            with g.image.open("rb") as fh:
                pixels = Image.open(fh).convert("RGB")
            copy = Generation.objects.create(sweep=other, prompt=g.prompt, model=g.model, seed=0, width=CANVAS,
                                             height=CANVAS, status=GenerationStatus.DONE, finished_at=g.finished_at)
            copy.image.save(f"x.{fmt}", ContentFile(normalize_image(pixels, width=CANVAS, height=CANVAS, fmt=fmt)))
        sweeps[fmt] = other
    assert Generation.objects.filter(sweep=png, status=GenerationStatus.DONE).count() == len(models) * N_PROMPTS
    return sweeps, models


def loo_nearest_neighbour(features: list, labels: list) -> float:
    """Leave-one-out 1-NN accuracy, ties counted as a random pick among the tied neighbours (its expectation)."""
    total = 0.0
    for i, (x, y) in enumerate(zip(features, labels, strict=True)):
        dists = [(abs(x - f), labels[j]) for j, f in enumerate(features) if j != i]
        best = min(d for d, _ in dists)
        tied = [lab for d, lab in dists if d == best]
        total += tied.count(y) / len(tied)
    return total / len(features)


def chunk_layout(body: bytes) -> tuple:
    """The sequence of chunk (PNG) or marker (JPEG) types, for the layout check."""
    if body.startswith(b"\x89PNG"):
        out, pos = [], 8
        while pos + 8 <= len(body):
            (n,) = struct.unpack(">I", body[pos:pos + 4])
            out.append(body[pos + 4:pos + 8])
            pos += 12 + n
            if out[-1] == b"IEND":
                break
        return tuple(out)
    if body.startswith(b"RIFF"):
        return (body[:4], body[8:16])
    out, pos = [body[:2]], 2  # JPEG: the marker segments up to the start of scan
    while pos + 4 <= len(body) and body[pos] == 0xFF:
        marker = body[pos + 1]
        out.append(bytes([marker]))
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", body[pos + 2:pos + 4])[0]
    return tuple(out)


def crawl_sizes(study) -> tuple[list[int], list[int], list[int], set]:
    """Panelists minted from the shared link rate everything; every image fetched (size, stored size, model)."""
    share = services.study_share_enable(study=study)
    served, stored, labels, layouts = [], [], [], set()
    by_public = {g.public_id: g for g in Generation.objects.filter(sweep=study.sweep).select_related("model")}
    for _ in range(6):
        client = Client()
        home = client.post(f"/r/{share}/start/")["Location"]
        html = client.get(home).content.decode()
        for _ in range(200):
            action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html)
            if not action:
                break
            for src in re.findall(r'<img src="([^"]+)"', html):
                response = client.get(src)
                body = response.content
                gen = by_public[src.rstrip("/").split("/")[-1]]
                served.append(int(response["Content-Length"]) if response.has_header("Content-Length") else len(body))
                stored.append(gen.image.size)
                labels.append(gen.model_id)
                layouts.add(chunk_layout(body))
            names = sorted(set(re.findall(r'type="radio" name="((?:single|left|right)-[\w-]+)"', html)))
            html = client.post(action.group(1), {n: "6" for n in names}, headers={"HX-Request": "true"}).content.decode()
    return served, stored, labels, layouts


def _size_check(demo_sweeps, fmt):
    sweeps, models = demo_sweeps
    study = services.study_create(sweep=sweeps[fmt], name=f"sizes {fmt}", mode="both", ratings_per_item=2,
                                  gold_enabled=False)
    services.study_open(study=study)
    served, stored, labels, layouts = crawl_sizes(study)
    chance = max(Counter(labels).values()) / len(labels)
    assert len(labels) >= 100 and len(set(labels)) == len(models)
    leak = loo_nearest_neighbour(stored, labels)
    now = loo_nearest_neighbour(served, labels)
    print(f"{fmt}: {len(labels)} image fetches; stored sizes {leak:.0%}, served {now:.0%}, chance {chance:.0%}; "
          f"{len(set(served))} served size(s), {len(layouts)} chunk layout(s)")
    assert leak > chance + 0.25, "the stored files must be tellable apart, or this test proves nothing"
    assert now <= chance + 0.05
    assert len(set(served)) == 1 and len(layouts) == 1


def _rotation_rate(seqs: list[list[int]], m: int) -> float:
    blocks = [len(set(s[i:i + m])) == m for s in seqs for i in range(len(s) - m + 1)]
    return sum(blocks) / len(blocks)


def _next_guess_rate(seqs: list[list[int]], m: int) -> float:
    """Guess the next model as one not among the last m-1 (the rotation's tell); fraction right."""
    hits = total = 0
    for s in seqs:
        for i in range(m - 1, len(s)):
            recent = set(s[i - m + 1:i])
            candidates = sorted(set(s) - recent) or sorted(set(s))
            hits += (s[i] in candidates) / len(candidates)
            total += 1
    return hits / total


def test_side_channels_are_at_chance_on_a_rendered_demo_study(demo_sweeps, monkeypatch, settings):
    # six panelists per format from one test client address: above the default per-address minting rate (5/h)
    settings.EVALSITE_RATES = {**settings.EVALSITE_RATES, "share_client": "100/h"}
    """One rendering of the demo study (CPU), then the size check per format and the order check."""
    for fmt in ("png", "jpeg", "webp"):
        _size_check(demo_sweeps, fmt)
    _order_check(demo_sweeps, monkeypatch)


def _order_check(demo_sweeps, monkeypatch):
    from ratings.services import assignments

    monkeypatch.setattr(assignments, "_rng", random.Random(12))  # the same draws every run
    # ... and the same item order: each item's shuffle rank (ratings.models.new_shuffle) from a seeded draw too
    import secrets
    from types import SimpleNamespace

    import ratings.models

    ranks = random.Random(13)
    monkeypatch.setattr(ratings.models, "secrets", SimpleNamespace(randbelow=ranks.randrange,
                                                                   token_urlsafe=secrets.token_urlsafe))
    sweeps, models = demo_sweeps
    study = services.study_create(sweep=sweeps["png"], name="order", mode="single", ratings_per_item=15,
                                  gold_enabled=False)
    services.study_open(study=study)
    panelists = [services.panelist_create(study=study) for _ in range(15)]
    for p in panelists:  # each rates alone, the case where a rotation showed
        while (a := services.assignment_next(panelist=p)) is not None:
            scores = {(a.left_id, c.pk): 5 for c in criteria_for_prompt(study=study, prompt=a.shown_prompt)}
            services.assignment_submit(assignment_id=a.pk, panelist=p, scores=scores)
    seqs = [list(Assignment.objects.filter(panelist=p).order_by("created_at", "id").values_list("left__model_id",
                                                                                                flat=True))
            for p in panelists]
    assert all(len(s) == len(models) * N_PROMPTS for s in seqs)
    m = len(models)
    rng = random.Random(0)
    shuffled = [[rng.sample(s, len(s)) for s in seqs] for _ in range(100)]
    chance_rot = sum(_rotation_rate(x, m) for x in shuffled) / len(shuffled)
    chance_next = sum(_next_guess_rate(x, m) for x in shuffled) / len(shuffled)
    rot, nxt = _rotation_rate(seqs, m), _next_guess_rate(seqs, m)
    print(f"rotation blocks {rot:.1%} (chance {chance_rot:.1%}); next-model guess {nxt:.1%} (chance {chance_next:.1%})")
    assert abs(rot - chance_rot) <= 0.05
    assert abs(nxt - chance_next) <= 0.05
    # and the statistic does see a rotation when there is one
    rotation = [[models[i % m].pk for i in range(len(seqs[0]))]]
    assert _rotation_rate(rotation, m) > 0.9 and _next_guess_rate(rotation, m) > 0.9
