"""A study mixing rendered and imported images passes the blindness crawl (issue 15)."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image, PngImagePlugin

from generation.models import ImageModel, Origin
from generation.services.imports import bundle_from_zip, sweep_images_import
from ratings import services
from ratings.models import Assignment
from tests.factories import make_sweep
from tests.ratings.test_ratings_blindness import SECRET_MODELS, blindness_problems, crawl_study

pytestmark = pytest.mark.django_db


def api_png(i: int) -> bytes:
    """An API's output: another size and format, with metadata naming the service."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "SecretAPI Ultra v9")
    info.add_text("parameters", "model=secretapi-ultra-9")
    image = Image.new("RGBA", (1344, 768), (30 * i % 256, 120, 200, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, dpi=(300, 300))
    return buf.getvalue()


def test_a_study_of_rendered_and_imported_images_reveals_no_model(tmp_path):
    sweep, models, prompts, gens = make_sweep(n_models=2, n_prompts=4, model_kwargs=SECRET_MODELS[:2])
    path = tmp_path / "secretapi-ultra-9_outputs.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.csv", "prompt,file,seconds,cost\n" + "".join(
            f"{p.position},secretapi-ultra-9/{p.position}.png,12.5,1.00\n" for p in prompts))
        for i, p in enumerate(prompts):
            z.writestr(f"secretapi-ultra-9/{p.position}.png", api_png(i))
    result = sweep_images_import(sweep=sweep, model_name="SecretAPI Ultra v9", bundle=bundle_from_zip(
        file=path, label=path.name))
    imported = result["model"]
    assert imported.generations.filter(origin=Origin.IMPORTED).count() == 4
    study = services.study_create(sweep=sweep, name="mixed", mode="both", ratings_per_item=1)
    services.study_open(study=study)
    responses = crawl_study(study)
    kinds = set(Assignment.objects.filter(study=study).values_list("kind", flat=True))
    assert kinds == {"single", "pair"}
    images = [r for _, r in responses if r["Content-Type"].startswith("image/")]
    imported_ids = set(imported.generations.values_list("public_id", flat=True))
    seen_imported = [u for u, r in responses if r["Content-Type"].startswith("image/") and u.rstrip("/").split("/")[-1]
                     in imported_ids]
    assert len(images) >= 8 and seen_imported, "the crawl must receive imported images"
    everyone = [*models, imported, ImageModel(slug="secretapi-ultra-9", name="SecretAPI Ultra", source="secretapi",
                                              revision="outputs.zip")]
    all_ids = [g.pk for g in imported.generations.all()] + [g.pk for g in gens]
    assert blindness_problems(responses, models=everyone, generation_ids=all_ids) == []
