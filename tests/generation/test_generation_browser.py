"""Issue 15 in a real browser (Debian's Chromium via Playwright, live_server): the gallery, the sweep form
(preview, subset, cancel) and the image import. Layout is asserted from bounding boxes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image

from generation.models import Generation, GenerationStatus, Origin, Sweep, SweepStatus
from tests.factories import GenerationFactory, ImageModelFactory, PromptFactory, PromptSuiteFactory, make_sweep

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PROMPTS = [
    ("A red colored car.", "Colors"),
    ("A storefront with 'Deep Learning' written on it.", "Text"),
    ("A black apple and a green backpack.", "Colors"),
    ("An IKEA instructions sheet for assembling a teapot.", "Conflicting"),
    ("A sign that says 'Diffusion'.", "Text"),
    ("Five cars on the street.", "Counting"),
]
MODELS = ["FLUX.1 [dev]", "Stable Diffusion 3.5 Large", "Z-Image Turbo", "Closed API v2"]
LOAD_ERROR = ("model z-image-turbo could not be loaded: the weights of 'Tongyi-MAI/Z-Image-Turbo' are not cached on "
              "this worker and the hub is unreachable. What to do: download them on a machine with access and copy the "
              "hub cache here, or register a local directory.")


def login(page, live_server):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "x")
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                               "url": live_server.url}])


def box(locator):
    b = locator.bounding_box()
    assert b is not None, locator
    return b


def rendered_sweep(*, size: int = 256):
    """A finished sweep of 6 prompts × 4 models (one imported), one image failed with a long error."""
    sweep, models, prompts, generations = make_sweep(
        canvas=size, text_prompts=0, suite__name="DrawBench excerpt", name="DrawBench × 4 models",
        status=SweepStatus.FAILED,
        prompt_kwargs=[{"text": t, "category": c, "position": i + 1,
                        "expected_text": "Deep Learning" if "Deep" in t else ("Diffusion" if "Diffusion" in t else "")}
                       for i, (t, c) in enumerate(PROMPTS)],
        model_kwargs=[{"name": n, "slug": f"m{i}", "backend": "imported" if "API" in n else "diffusers"}
                      for i, n in enumerate(MODELS)])
    gens = {}
    for g in generations:
        mi, pj = models.index(g.model), prompts.index(g.prompt)
        failed = g.model.name == "Z-Image Turbo" and pj == 3
        if failed:
            g.status, g.error, g.image = GenerationStatus.FAILED, LOAD_ERROR, ""
        g.origin = Origin.IMPORTED if "API" in g.model.name else Origin.RENDERED
        g.seconds = None if "API" in g.model.name else 1.5 + mi
        g.worker, g.gpu_name = "gpu-1:4242", "NVIDIA H200"
        g.peak_vram_allocated, g.peak_vram_reserved = (8 + mi) * 2**30, (9 + mi) * 2**30
        g.settings_snapshot = {"spec": {"num_inference_steps": 28, "guidance_scale": 3.5},
                               "environment": {"torch": "2.13.0", "diffusers": "0.42.1"}}
        g.ocr_text = "Deep Learnig" if g.prompt.expected_text else ""
        g.ocr_cer = 0.08 if g.prompt.expected_text else None
        g.save()
        gens[(mi, pj)] = g
    return sweep, models, prompts, gens


def test_gallery_sheet_full_size_side_by_side_and_failed_filter(page, live_server):
    sweep, models, prompts, gens = rendered_sweep()
    login(page, live_server)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/gallery/")
    sheet = page.locator("#contact-sheet")
    rows = sheet.locator("tbody tr")
    assert rows.count() == 6
    headers = sheet.locator("thead th")
    assert headers.all_inner_texts()[1:] == ["Closed API v2 (imported)", "FLUX.1 [dev]", "Stable Diffusion 3.5 Large",
                                             "Z-Image Turbo"]
    # one row per prompt, one column per model: cells of a row share a line, columns go left to right
    for r in range(2):
        cells = rows.nth(r).locator("td")
        boxes = [box(cells.nth(c)) for c in range(5)]
        assert all(abs(b["y"] - boxes[0]["y"]) < 2 for b in boxes)
        assert all(boxes[c]["x"] < boxes[c + 1]["x"] for c in range(4))
        for c in range(1, 5):  # each thumbnail sits under its model's header
            header, cell = box(headers.nth(c)), boxes[c]
            assert abs(header["x"] - cell["x"]) < 2
    thumbs = sheet.locator("a.thumb img")
    assert thumbs.count() == 23
    page.wait_for_function("() => [...document.querySelectorAll('a.thumb img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.evaluate("() => document.querySelector('a.thumb img').naturalWidth") == 256  # 256 px canvas, thumb ≤ 256
    assert len(list(Path(settings.MEDIA_ROOT).glob("t/*/*.jpg"))) == 23  # made once, kept in storage
    failed = sheet.locator("a.cell-failed")
    assert failed.count() == 1 and "failed" in failed.inner_text()
    # the failure is listed with its whole error, the part that says what to do included
    assert LOAD_ERROR in page.locator("#failures").inner_text().replace("\n", " ")

    # filters: failed only, then one category
    page.check("input[name=failed]")
    page.click("#gallery-filters button")
    page.wait_for_url("**failed=1**")
    assert rows.count() == 1 and sheet.locator("a.thumb").count() == 0
    page.uncheck("input[name=failed]")
    page.select_option("select[name=category]", "Text")
    page.click("#gallery-filters button")
    page.wait_for_url("**category=Text**")
    assert rows.count() == 2

    # click a thumbnail: full size with how it was made
    rows.first.locator("a.thumb").nth(1).click()  # FLUX.1 [dev] (the first column is the imported model)
    page.wait_for_selector("#full-image")
    page.wait_for_function("() => document.querySelector('#full-image').naturalWidth > 0")
    assert page.evaluate("() => document.querySelector('#full-image').naturalWidth") == 256
    facts = page.locator("table.facts").inner_text()
    for needle in ("Seed", "num_inference_steps=28", "1.500", "8.00 GiB peak allocated", "gpu-1:4242",
                   "torch 2.13.0", "Deep Learnig"):
        assert needle in facts, needle

    # all models for this prompt side by side (one line of four at 1280 px)
    page.click("text=all models for this prompt")
    page.wait_for_selector("#side-by-side figure")
    figures = page.locator("#side-by-side figure")
    assert figures.count() == 4
    fboxes = [box(figures.nth(i)) for i in range(4)]
    assert all(abs(b["y"] - fboxes[0]["y"]) < 2 for b in fboxes)
    assert all(fboxes[i]["x"] + fboxes[i]["width"] <= fboxes[i + 1]["x"] + 1 for i in range(3))
    assert "imported" in figures.nth(0).inner_text()  # Closed API v2 sorts first: its cells say imported

    # the sweep page's bar is truthful: the failed share has its own colour and width
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/")
    bar = box(page.locator("#sweep-progress .bar"))
    red = box(page.locator("#sweep-progress .bar .failed"))
    assert red["width"] == pytest.approx(bar["width"] / 24, abs=1.5)
    colour = page.evaluate("() => getComputedStyle(document.querySelector('.bar .failed')).backgroundColor")
    assert colour != page.evaluate("() => getComputedStyle(document.querySelector('.bar .done')).backgroundColor")


def test_sweep_form_preview_subset_and_cancel(page, live_server):
    suite = PromptSuiteFactory(name="bench")
    for i in range(10):
        PromptFactory(suite=suite, category="Text" if i < 4 else "Colors", position=i + 1)
    measured = ImageModelFactory(name="Measured", width=64, height=64)
    ImageModelFactory(name="Fresh", width=40, height=40)
    old = Sweep.objects.create(suite=PromptSuiteFactory(), seeds=[0])
    for i, sec in enumerate((2.0, 4.0, 3.0)):
        GenerationFactory(sweep=old, model=measured, seconds=sec, seed=i)
    login(page, live_server)
    page.goto(f"{live_server.url}/sweeps/new/")
    page.select_option("#id_suite", label="bench")
    page.check("text=Measured")
    page.fill("#id_seeds", "2")
    page.locator("#id_seeds").dispatch_event("change")
    page.wait_for_function("() => document.querySelector('#preview-images')?.textContent === '20'")
    assert "about 60 s" in page.locator("#preview-time").inner_text()  # median 3 s/image × 20
    assert page.locator("#preview-canvas").inner_text() == "1024×1024"  # not the models' 64 px
    page.check("#sweep-form input[name=categories][value=Text]")
    page.wait_for_function("() => document.querySelector('#preview-images').textContent === '8'")
    page.fill("#id_sample", "3")
    page.wait_for_function("() => document.querySelector('#preview-images').textContent === '6'")
    page.check("text=Fresh")
    page.wait_for_function("() => document.querySelector('#preview-images').textContent === '12'")
    assert "Fresh (never measured)" in page.locator("#preview-time").inner_text()
    # the preview sits inside the form, above the start button
    assert box(page.locator("#preview"))["y"] < box(page.locator("#sweep-form button[type=submit]"))["y"]
    page.fill("#id_name", "text subset")
    page.click("#sweep-form button[type=submit]")
    page.wait_for_selector("#cancel-sweep")
    sweep = Sweep.objects.get(name="text subset")
    assert sweep.generations.count() == 12 and (sweep.canvas_width, sweep.canvas_height) == (1024, 1024)
    assert set(sweep.generations.values_list("prompt__category", flat=True)) == {"Text"}
    first = sweep.generations.order_by("pk").first()
    Generation.objects.filter(pk=first.pk).update(status=GenerationStatus.RUNNING, worker="gpu:1")
    page.click("#cancel-sweep")
    page.wait_for_selector("text=Sweep cancelled")
    assert page.locator("#cancel-sweep").count() == 0
    statuses = list(sweep.generations.values_list("status", flat=True))
    assert statuses.count("running") == 1 and statuses.count("cancelled") == 11
    bar = box(page.locator("#sweep-progress .bar"))
    grey = box(page.locator("#sweep-progress .bar .cancelled"))
    assert grey["width"] == pytest.approx(bar["width"] * 11 / 12, abs=1.5)
    assert page.locator("#sweep-progress").inner_text().startswith("Cancelled")


def test_image_import_page(page, live_server, tmp_path):
    sweep, models, prompts, gens = rendered_sweep(size=64)
    login(page, live_server)
    zpath = tmp_path / "api.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("manifest.csv", "prompt,file,seconds\n" + "".join(f"{p.position},out/{p.position}.png,9.5\n"
                                                                      for p in prompts))
        for p in prompts:
            buf = io.BytesIO()
            Image.new("RGB", (300, 200), (200, 10 * p.position, 30)).save(buf, format="PNG")
            z.writestr(f"out/{p.position}.png", buf.getvalue())
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("manifest.csv", "prompt,file\n1,out/1.png\n99,out/2.png\n")
        z.writestr("out/1.png", b"not an image")
        z.writestr("../escape.png", b"x")
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/")
    page.click("text=Import a model's images")
    page.fill("#id_model_name", "Paid API")
    page.set_input_files("#id_images", str(bad))
    page.click("#import-form button[type=submit]")
    problems = page.locator("#import-problems")
    problems.wait_for()
    text = problems.inner_text()
    assert "Nothing was imported: 4 problems" in text and "file 'out/2.png' is not in bad.zip" in text
    assert "entry '../escape.png' climbs out of the archive" in text
    assert "manifest.csv:3: unknown prompt '99'" in text and "manifest.csv:2 (out/1.png): not an image" in text
    assert not Generation.objects.filter(origin=Origin.IMPORTED, model__name="Paid API").exists()
    # the problems are shown above the form
    assert box(problems)["y"] < box(page.locator("#import-form"))["y"]
    page.fill("#id_model_name", "Paid API")
    page.set_input_files("#id_images", str(zpath))
    page.click("#import-form button[type=submit]")
    page.wait_for_url("**/gallery/?model=**")
    assert "Imported 6 images of Paid API" in page.locator(".messages").inner_text()
    assert page.locator("#contact-sheet a.thumb").count() == 6
    imported = Generation.objects.filter(sweep=sweep, model__name="Paid API")
    assert imported.count() == 6 and set(imported.values_list("width", "height")) == {(64, 64)}
    page.locator("#contact-sheet a.thumb").first.click()
    page.wait_for_selector("table.facts")
    facts = page.locator("table.facts").inner_text()
    assert "imported from out/1.png" in facts and "9.500 (supplied)" in facts and "VRAM\timported" in facts


@pytest.mark.screenshots
def test_gallery_screenshot(page, live_server):
    """README screenshot of the gallery (`make screenshots` only; never make test)."""
    sweep, models, prompts, gens = rendered_sweep()
    login(page, live_server)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/gallery/")
    page.wait_for_function("() => [...document.querySelectorAll('a.thumb img')].every(i => i.complete && i.naturalWidth > 0)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "gallery.png"), full_page=True)
    assert (SHOTS / "gallery.png").stat().st_size > 10_000
