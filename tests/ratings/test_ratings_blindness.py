"""Blindness: crawl every panelist-facing response of a study and look for anything naming a model.

Checks HTML, headers and image bytes for each model's slug, name, repo, revision and pipeline
class; checks that every image has one pixel size and one format and no metadata; that
headers carry no file name or dates; that form fields don't expose generation ids.
"""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client
from PIL import Image

from generation.models import ImageModel
from ratings import services
from ratings.models import Assignment
from tests.factories import make_sweep

pytestmark = pytest.mark.django_db

SECRET_MODELS = [
    {"slug": "flux-dev-secret", "name": "FLUX.1 [dev] Secret", "source": "black-forest-labs/FLUX.1-dev",
     "pipeline_class": "FluxPipeline", "revision": "rev-flux-42"},
    {"slug": "sd35-large-secret", "name": "Stable Diffusion 3.5 Large Secret",
     "source": "stabilityai/stable-diffusion-3.5-large", "pipeline_class": "StableDiffusion3Pipeline",
     "revision": "rev-sd3-43"},
    {"slug": "zimage-turbo-secret", "name": "Z-Image Turbo Secret", "source": "Tongyi-MAI/Z-Image-Turbo",
     "pipeline_class": "ZImagePipeline", "revision": "rev-zimage-44"},
]
FORBIDDEN_HEADERS = ("content-disposition", "last-modified", "etag", "x-model", "server-timing")


def identifying_strings(models: list[ImageModel]) -> list[str]:
    out = []
    for m in models:
        for value in (m.slug, m.name, m.source, m.revision, m.pipeline_class, m.source.split("/")[-1]):
            if value and len(value) >= 4:
                out.append(value.lower())
        out.append(f"model-{m.pk}")
        out.append(f"model_id={m.pk}")
    return out


def blindness_problems(responses: list[tuple[str, object]], *, models, generation_ids) -> list[str]:
    """Every leak found in the crawled responses (empty = blind)."""
    needles = identifying_strings(models)
    problems: list[str] = []
    image_shapes = set()
    for url, response in responses:
        header_text = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).lower()
        body = response.content
        for needle in needles:
            if needle in header_text:
                problems.append(f"{url}: header names a model ({needle!r})")
            if needle.encode() in body.lower():
                problems.append(f"{url}: body names a model ({needle!r})")
        for name in FORBIDDEN_HEADERS:
            if name in {k.lower() for k in response.headers.keys()}:
                problems.append(f"{url}: header {name} may tell images apart")
        if response["Content-Type"].startswith("image/"):
            if "private" not in response.get("Cache-Control", "") or "no-store" not in response.get("Cache-Control", ""):
                problems.append(f"{url}: image is cacheable ({response.get('Cache-Control')!r})")
            img = Image.open(io.BytesIO(body))
            image_shapes.add((img.format, img.size, img.mode, response["Content-Type"]))
            meta = {k for k in img.info if k not in ("dpi",)}
            if meta or img.getexif():
                problems.append(f"{url}: image carries metadata {sorted(meta)}")
        elif response["Content-Type"].startswith("text/html"):
            html = body.decode()
            for name in re.findall(r'name="([^"]+)"', html):
                if any(re.search(rf"(^|\D){gid}(\D|$)", name) for gid in generation_ids):
                    problems.append(f"{url}: form field {name!r} exposes a generation id")
            if "/media/" in html:
                problems.append(f"{url}: links a media file directly")
    if len(image_shapes) > 1:
        problems.append(f"images differ in format/size: {sorted(image_shapes)}")
    return problems


def crawl_study(study) -> list[tuple[str, object]]:
    """Play a panelist through the whole study (shared link, consent, every item, every image)."""
    responses = []
    client = Client()

    def get(url, **kw):
        r = client.get(url, **kw)
        responses.append((url, r))
        return r

    def post(url, data, **kw):
        r = client.post(url, data, **kw)
        responses.append((url, r))
        return r

    share = services.study_share_enable(study=study)
    get(f"/r/{share}/")
    start = post(f"/r/{share}/start/", {})
    home = start["Location"]
    page = get(home)
    token = home.strip("/").split("/")[-1]
    stranger = services.panelist_create(study=study)
    for _ in range(200):
        html = page.content.decode()
        action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html)
        if not action:
            break
        for src in re.findall(r'<img src="([^"]+)"', html):
            get(src)
            get(src.replace(token, stranger.token))  # someone else's image: refused
        names = sorted(set(re.findall(r'type="radio" name="((?:single|left|right)-[\w-]+)"', html)))
        page = post(action.group(1), {n: "6" for n in names}, headers={"HX-Request": "true"})
    get(home)  # the "thank you" page
    return responses


def test_crawl_of_a_study_reveals_no_model():
    sweep, models, prompts, gens = make_sweep(n_models=3, n_prompts=4, model_kwargs=SECRET_MODELS)
    study = services.study_create(sweep=sweep, name="blind", mode="both", ratings_per_item=1)
    services.study_open(study=study)
    responses = crawl_study(study)
    kinds = set(Assignment.objects.filter(study=study).values_list("kind", flat=True))
    assert kinds == {"single", "pair"}, "the crawl must see singles and pairs"
    assert sum(1 for _, r in responses if r["Content-Type"].startswith("image/")) >= 6
    problems = blindness_problems(responses, models=models, generation_ids=[g.pk for g in gens])
    assert problems == []
    for _, r in responses:
        if r["Content-Type"].startswith("image/") or "/r/" in _:
            assert r["Cache-Control"] == "private, no-store"


def test_the_crawl_check_catches_leaks():
    """The checker itself fails on a leaking name, a different size or format, and metadata."""
    sweep, models, prompts, gens = make_sweep(n_models=2, n_prompts=2, model_kwargs=SECRET_MODELS[:2])
    study = services.study_create(sweep=sweep, name="leaky", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    from django.core.files.base import ContentFile

    odd = gens[0]
    buf = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "made by FluxPipeline")
    Image.new("RGB", (80, 64), (1, 2, 3)).save(buf, format="PNG", pnginfo=info)
    odd.image.save("x.png", ContentFile(buf.getvalue()), save=True)
    jpeg = io.BytesIO()
    # (a PNG text chunk no longer reaches panelists: serving rewrites PNG chunks; a JPEG comment does)
    Image.new("RGB", (64, 64), (9, 9, 9)).save(jpeg, format="JPEG", comment=b"made by FluxPipeline")
    gens[1].image.save("y.png", ContentFile(jpeg.getvalue()), save=True)
    problems = blindness_problems(crawl_study(study), models=models, generation_ids=[g.pk for g in gens])
    text = "\n".join(problems)
    assert "images differ in format/size" in text
    assert "fluxpipeline" in text
    assert "metadata" in text
