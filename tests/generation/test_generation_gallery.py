"""Staff pages of issue 15 (server side): gallery, image facts, thumbnails, admin links, progress, cancel, preview."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from PIL import Image

from generation.models import Generation, GenerationStatus, Sweep, SweepStatus, WorkerReport
from generation.services import sweep_cancel, sweep_create
from ratings import services as rating_services
from tests.factories import GenerationFactory, ImageModelFactory, PromptFactory, PromptSuiteFactory, make_sweep

pytestmark = pytest.mark.django_db

LONG_ERROR = ("model tiny could not be loaded: " + "x" * 600 + " -- FIX: run build_demo_models --dir var/models")


@pytest.fixture
def staff():
    user = get_user_model().objects.create_superuser("staff", password="pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def gallery_sweep():
    sweep, models, prompts, gens = make_sweep(n_models=2, n_prompts=3)
    failed = gens[-1]
    failed.status = GenerationStatus.FAILED
    failed.error = LONG_ERROR
    failed.save()
    done = gens[0]
    done.seconds, done.peak_vram_allocated, done.peak_vram_reserved = 1.25, 3 * 2**30, 4 * 2**30
    done.worker, done.gpu_name = "gpu-host:42", "NVIDIA H200"
    done.settings_snapshot = {"spec": {"num_inference_steps": 28, "guidance_scale": 3.5},
                              "environment": {"torch": "2.13.0", "diffusers": "0.42.1"}}
    done.ocr_text, done.ocr_cer, done.ocr_all_words = "OPEN 0", 0.0, True
    done.save()
    return sweep, models, prompts, gens


def test_gallery_is_a_prompt_by_model_sheet_with_filters(staff, gallery_sweep):
    sweep, models, prompts, gens = gallery_sweep
    html = staff.get(reverse("generation:sweep_gallery", args=[sweep.pk])).content.decode()
    assert len(re.findall(r'<tr data-prompt="', html)) == 3
    assert all(m.name in html for m in models)
    assert html.count("/thumb/") == 5  # 6 images, one failed
    assert LONG_ERROR in html  # failed images are listed with their full error
    only_failed = staff.get(reverse("generation:sweep_gallery", args=[sweep.pk]) + "?failed=1").content.decode()
    assert len(re.findall(r'<tr data-prompt="', only_failed)) == 1 and "/thumb/" not in only_failed
    one_model = staff.get(reverse("generation:sweep_gallery", args=[sweep.pk]) + f"?model={models[0].pk}").content.decode()
    header = one_model.split('id="contact-sheet"')[1].split("<tbody>")[0]
    assert one_model.count("/thumb/") == 3 and models[0].name in header and models[1].name not in header
    assert html.count('<option value="General"') == 1 and html.count('<option value="Text"') == 1
    text_only = staff.get(reverse("generation:sweep_gallery", args=[sweep.pk]) + "?category=Text").content.decode()
    assert len(re.findall(r'<tr data-prompt="', text_only)) == 1


def test_image_page_shows_seed_settings_seconds_vram_worker_versions_and_ocr(staff, gallery_sweep):
    sweep, models, prompts, gens = gallery_sweep
    html = staff.get(reverse("generation:gallery_image", args=[gens[0].public_id])).content.decode()
    for needle in ("num_inference_steps=28", "1.250", "3.00 GiB peak allocated", "gpu-host:42", "NVIDIA H200",
                   "torch 2.13.0", "diffusers 0.42.1", '<q class="ocr-text">OPEN 0</q>', "CER 0.00"):
        assert needle in html, needle
    full = staff.get(reverse("generation:staff_image", args=[gens[0].public_id]))
    assert full.status_code == 200 and full["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(b"".join(full.streaming_content))).size == (64, 64)
    failed = staff.get(reverse("generation:gallery_image", args=[gens[-1].public_id])).content.decode()
    assert LONG_ERROR in failed


def test_prompt_page_puts_all_models_side_by_side(staff, gallery_sweep):
    sweep, models, prompts, gens = gallery_sweep
    html = staff.get(reverse("generation:gallery_prompt", args=[sweep.pk, prompts[0].pk])).content.decode()
    assert html.count("<figure") == 2 and all(f'data-model="{m.slug}"' in html for m in models)


def test_thumbnails_are_made_once_and_kept_in_storage(staff, gallery_sweep, settings, monkeypatch):
    sweep, models, prompts, gens = gallery_sweep
    url = reverse("generation:staff_thumbnail", args=[gens[0].public_id])
    first = staff.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    stored = list(Path(settings.MEDIA_ROOT).glob(f"t/*/{gens[0].public_id}.jpg"))
    assert len(stored) == 1
    thumb = Image.open(stored[0])
    assert max(thumb.size) <= 256

    def no_second_encoding(*args, **kwargs):
        raise AssertionError("the thumbnail was made again")

    monkeypatch.setattr(Image.Image, "thumbnail", no_second_encoding)
    again = staff.get(url)
    assert again.status_code == 200 and b"".join(again.streaming_content) == stored[0].read_bytes()


def test_staff_pages_are_never_reachable_with_a_panelist_token(gallery_sweep):
    sweep, models, prompts, gens = gallery_sweep
    study = rating_services.study_create(sweep=sweep, name="s", mode="single", ratings_per_item=1)
    rating_services.study_open(study=study)
    panelist = rating_services.panelist_create(study=study)
    client = Client()
    assert client.get(f"/r/{panelist.token}/").status_code in (200, 302)  # the panelist's own session
    g = gens[0].public_id
    for url in (reverse("generation:sweep_gallery", args=[sweep.pk]),
                reverse("generation:gallery_prompt", args=[sweep.pk, prompts[0].pk]),
                reverse("generation:gallery_image", args=[g]), reverse("generation:staff_image", args=[g]),
                reverse("generation:staff_thumbnail", args=[g]), reverse("generation:sweep_import", args=[sweep.pk]),
                reverse("generation:sweep_new"), reverse("generation:sweep_list"),
                reverse("generation:sweep_gallery", args=[sweep.pk]) + f"?token={panelist.token}"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


def test_admin_image_links_work(staff, gallery_sweep):
    sweep, models, prompts, gens = gallery_sweep
    user = get_user_model().objects.create_superuser("root", password="pw")
    admin = Client()
    admin.force_login(user)
    html = admin.get(reverse("admin:generation_generation_change", args=[gens[0].pk])).content.decode()
    links = re.findall(r'href="(/sweeps/images/[^"]+)"', html) + re.findall(r'src="(/sweeps/images/[^"]+)"', html)
    assert len(links) >= 3 and "/media/" not in html
    for link in links:
        assert admin.get(link).status_code == 200, link
    listing = admin.get(reverse("admin:generation_generation_changelist")).content.decode()
    assert "/thumb/" in listing


def test_progress_bar_and_list_tell_the_truth(staff):
    suite = PromptSuiteFactory()
    prompts = [PromptFactory(suite=suite) for _ in range(4)]
    model = ImageModelFactory()
    sweep = Sweep.objects.create(suite=suite, seeds=[0], status=SweepStatus.FAILED, name="all failed")
    sweep.image_models.set([model])
    for p in prompts:
        GenerationFactory(sweep=sweep, prompt=p, model=model, status=GenerationStatus.FAILED, error=LONG_ERROR)
    html = staff.get(reverse("generation:sweep_detail", args=[sweep.pk])).content.decode()
    assert 'data-state="failed" style="width: 100.000%"' in html and 'data-state="done"' not in html
    assert LONG_ERROR in html  # not cut off before the part that says what to do
    assert 'id="no-study"' in html and "New study of this sweep" not in html
    with pytest.raises(rating_services.StudySetupError, match="nothing to rate"):
        rating_services.study_create(sweep=sweep, name="x", mode="single")
    listing = staff.get(reverse("generation:sweep_list")).content.decode()
    assert "all failed" in listing and model.name in listing and 'data-state="failed"' in listing


@pytest.mark.django_db(transaction=True)
def test_cancel_cancels_pending_and_lets_running_finish(staff, django_capture_on_commit_callbacks):
    suite = PromptSuiteFactory()
    for _ in range(5):
        PromptFactory(suite=suite)
    model = ImageModelFactory()
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweep_create(suite=suite, image_models=[model], seeds=1)
    gens = list(sweep.generations.order_by("pk"))
    Generation.objects.filter(pk=gens[0].pk).update(status=GenerationStatus.DONE)
    Generation.objects.filter(pk=gens[1].pk).update(status=GenerationStatus.RUNNING, worker="w:1")
    response = staff.post(reverse("generation:sweep_cancel", args=[sweep.pk]))
    assert response.status_code == 302
    statuses = dict(sweep.generations.values_list("pk", "status"))
    assert statuses[gens[0].pk] == "done" and statuses[gens[1].pk] == "running"
    assert [statuses[g.pk] for g in gens[2:]] == ["cancelled"] * 3
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.CANCELLED and sweep.cancelled_at is not None
    from generation.services.rendering import generation_save_outcome, generations_claim

    assert generations_claim(generation_ids=[g.pk for g in gens], worker="w:2") == []  # nothing left to claim
    assert sweep_cancel(sweep=sweep) == 0  # idempotent
    html = staff.get(reverse("generation:sweep_detail", args=[sweep.pk])).content.decode()
    assert "3 cancelled" in html and 'id="cancel-sweep"' not in html
    assert generation_save_outcome is not None


def test_canvas_default_and_subset(db, django_capture_on_commit_callbacks):
    suite = PromptSuiteFactory()
    for i in range(10):
        PromptFactory(suite=suite, category="Text" if i < 4 else "Colors")
    tiny = ImageModelFactory(width=40, height=40)
    big = ImageModelFactory(width=1536, height=1024)
    with django_capture_on_commit_callbacks(execute=False):
        small = sweep_create(suite=suite, image_models=[tiny], seeds=1)
        wide = sweep_create(suite=suite, image_models=[tiny, big], seeds=1)
        explicit = sweep_create(suite=suite, image_models=[tiny], seeds=1, canvas_width=64, canvas_height=64)
        texts = sweep_create(suite=suite, image_models=[tiny], seeds=2, categories=["Text"])
        subset = sweep_create(suite=suite, image_models=[tiny], seeds=1, sample=3, sample_seed=7)
        again = sweep_create(suite=suite, image_models=[tiny], seeds=1, sample=3, sample_seed=7)
    assert (small.canvas_width, small.canvas_height) == (1024, 1024)
    assert (wide.canvas_width, wide.canvas_height) == (1536, 1024)
    assert (explicit.canvas_width, explicit.canvas_height) == (64, 64)
    assert texts.generations.count() == 8 and set(texts.generations.values_list("prompt__category", flat=True)) == {"Text"}
    picked = set(subset.generations.values_list("prompt_id", flat=True))
    assert len(picked) == 3 and picked == set(again.generations.values_list("prompt_id", flat=True))
    assert subset.prompt_sample == 3 and subset.prompt_sample_seed == 7


def test_preview_counts_images_and_estimates_time_from_measured_speed(staff):
    suite = PromptSuiteFactory(name="bench")
    for i in range(10):
        PromptFactory(suite=suite, category="Text" if i < 4 else "Colors")
    measured, fresh = ImageModelFactory(name="Measured"), ImageModelFactory(name="Fresh")
    old = Sweep.objects.create(suite=suite, seeds=[0])
    for i, sec in enumerate((2.0, 3.0, 4.0)):
        GenerationFactory(sweep=old, prompt=PromptFactory(suite=suite), model=measured, seconds=sec, seed=i)
    url = reverse("generation:sweep_preview")
    html = staff.get(url, {"suite": suite.pk, "image_models": [measured.pk], "seeds": 2}).content.decode()
    assert '<strong id="preview-images">26</strong>' in html  # 13 prompts × 1 model × 2 seeds
    assert "about 78 s" in html  # median 3.0 s/image measured × 26
    html = staff.get(url, {"suite": suite.pk, "image_models": [measured.pk, fresh.pk], "seeds": 1,
                           "categories": ["Text"], "sample": 2}).content.decode()
    assert '<strong id="preview-images">4</strong>' in html and "Fresh (never measured)" in html
    assert '<span id="preview-canvas">1024×1024</span>' in html


def test_models_no_worker_can_load_are_flagged_and_need_confirmation(staff):
    from django.utils import timezone

    suite = PromptSuiteFactory()
    PromptFactory(suite=suite)
    ok, missing = ImageModelFactory(name="Here"), ImageModelFactory(name="Nowhere")
    WorkerReport.objects.create(worker="gpu:1", reported_at=timezone.now(), capabilities={
        ok.slug: {"loadable": True, "reason": "local directory"},
        missing.slug: {"loadable": False, "reason": "weights not cached and the hub is unreachable"}})
    html = staff.get(reverse("generation:sweep_new")).content.decode()
    assert "✓ loadable on gpu:1" in html
    assert 'data-flag="unloadable">⚠ no worker can load it: gpu:1: weights not cached' in html
    data = {"suite": suite.pk, "image_models": [missing.pk], "seeds": 1, "image_format": "png"}
    refused = staff.post(reverse("generation:sweep_new"), data)
    assert refused.status_code == 200 and not Sweep.objects.exists()
    assert "Nowhere: no worker can load it" in refused.content.decode()
    started = staff.post(reverse("generation:sweep_new"), {**data, "start_anyway": "on", "name": "anyway"})
    assert started.status_code == 302 and Sweep.objects.get().name == "anyway"
