"""Sweep creation, chunking, progress, the run_sweep / build_demo_models commands and the staff pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from generation.models import Generation, GenerationStatus, ImageModel, Sweep, SweepStatus
from generation.selectors import sweep_progress, sweep_totals
from generation.services import SweepInvalid, render_chunks, sweep_create
from tests.factories import ImageModelFactory, PromptFactory, PromptSuiteFactory, staff_user

pytestmark = pytest.mark.django_db


def test_sweep_create_makes_every_row_up_front_and_enqueues_after_commit(
    suite, django_capture_on_commit_callbacks
):
    a, b = ImageModelFactory(width=64, height=64), ImageModelFactory(width=128, height=96)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sweep = sweep_create(suite=suite, image_models=[a, b, a], seeds=3)
    assert len(callbacks) == 1  # nothing is sent before the rows are committed
    assert sweep.generations.count() == 2 * 4 * 3
    assert set(sweep.generations.values_list("status", flat=True)) == {GenerationStatus.PENDING}
    # the canvas defaults to 1024² (or the largest native size, when larger): small models are not blown up
    assert (sweep.canvas_width, sweep.canvas_height, sweep.seeds) == (1024, 1024, [0, 1, 2])
    assert sweep.status == SweepStatus.PENDING
    assert len(set(sweep.generations.values_list("public_id", flat=True))) == 24
    row = sweep.generations.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Generation.objects.create(sweep=sweep, prompt=row.prompt, model=row.model, seed=row.seed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": []}, "at least one seed"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [-1]}, "Seeds must be integers"),
        ({"canvas_width": 100}, "multiple of 8"),
        ({"image_format": "gif"}, "Image format must be one of"),
        ({"image_models": []}, "at least one model"),
    ],
)
def test_sweep_create_rejects_bad_input_and_creates_nothing(suite, kwargs, message):
    args = {"suite": suite, "image_models": [ImageModelFactory()], "seeds": 1, **kwargs}
    with pytest.raises(SweepInvalid) as excinfo:
        sweep_create(**args)
    assert message in " ".join(excinfo.value.messages)
    assert not Sweep.objects.exists() and not Generation.objects.exists()


def test_sweep_create_refuses_disabled_models_and_empty_suites():
    empty = PromptSuiteFactory()
    with pytest.raises(SweepInvalid, match="no prompts"):
        sweep_create(suite=empty, image_models=[ImageModelFactory()], seeds=1)
    suite = PromptFactory().suite
    with pytest.raises(SweepInvalid, match="Disabled models can't render: off"):
        sweep_create(suite=suite, image_models=[ImageModelFactory(slug="off", enabled=False)], seeds=1)


def test_chunks_are_model_major_and_keep_a_prompts_seeds_together(suite, settings):
    settings.RENDER_CHUNK_SIZE = 3
    a, b = ImageModelFactory(name="A"), ImageModelFactory(name="B")
    sweep = sweep_create(suite=suite, image_models=[b, a], seeds=2)
    rows = sweep.generations.order_by("model__name", "model_id", "prompt__position", "seed")
    chunks = render_chunks(generations=rows)
    assert [(model_id, len(ids)) for model_id, ids in chunks] == [(a.pk, 6), (a.pk, 2), (b.pk, 6), (b.pk, 2)]
    for model_id, ids in chunks:
        gens = Generation.objects.filter(pk__in=ids)
        assert {g.model_id for g in gens} == {model_id}
        prompts = {g.prompt_id for g in gens}
        assert gens.count() == 2 * len(prompts)  # both seeds of each prompt in the same chunk


def test_progress_counts_rate_and_eta(suite):
    model = ImageModelFactory(name="M")
    sweep = sweep_create(suite=suite, image_models=[model], seeds=1)
    rows = list(sweep.generations.order_by("pk"))
    start = timezone.now() - timedelta(seconds=10)
    Generation.objects.filter(pk__in=[g.pk for g in rows]).update(started_at=start)
    Generation.objects.filter(pk__in=[rows[0].pk, rows[1].pk]).update(
        status=GenerationStatus.DONE, finished_at=start + timedelta(seconds=4), seconds=1.5)
    Generation.objects.filter(pk=rows[2].pk).update(status=GenerationStatus.FAILED, finished_at=start)
    [row] = sweep_progress(sweep=sweep)
    assert (row["done"], row["failed"], row["pending"], row["running"], row["total"]) == (2, 1, 1, 0, 4)
    assert row["images_per_second"] == pytest.approx(0.5)
    assert row["eta_seconds"] == pytest.approx(2.0)
    assert row["mean_seconds"] == pytest.approx(1.5)
    totals = sweep_totals(sweep=sweep)
    assert totals["fraction"] == pytest.approx(0.75) and not totals["finished"]


# --- commands ----------------------------------------------------------------------------

def test_run_sweep_rejects_unknown_suite_and_models(suite):
    ImageModelFactory(slug="known")
    with pytest.raises(CommandError, match="unknown suite 'nope'"):
        call_command("run_sweep", "--suite", "nope", "--models", "known")
    with pytest.raises(CommandError, match="unknown model slug\\(s\\) ghost, ghost2 \\(known: known\\)"):
        call_command("run_sweep", "--suite", suite.name, "--models", "known,ghost,ghost2")
    assert not Sweep.objects.exists()


@pytest.mark.django_db(transaction=True)  # so the enqueue-on-commit really fires
def test_run_sweep_wait_renders_for_real_and_prints_the_id(suite, tiny_models, eager, capsys, settings):
    call_command("run_sweep", "--suite", suite.name, "--models", "tiny-zimage,tiny-flux", "--seeds", "2", "--wait",
                 "--timeout", "120")
    out, err = capsys.readouterr()
    sweep = Sweep.objects.get()
    assert out.strip() == str(sweep.pk)
    assert f"sweep {sweep.pk} done" in err
    assert sweep.status == SweepStatus.DONE
    assert sweep.generations.filter(status=GenerationStatus.DONE).count() == 2 * 4 * 2
    assert (sweep.canvas_width, sweep.canvas_height) == (1024, 1024)  # the default canvas, not the tiny 48 px


def test_build_demo_models_builds_registers_and_is_idempotent(tmp_path, capsys):
    call_command("build_demo_models", "--dir", str(tmp_path / "m"))
    first = capsys.readouterr().out
    models = {m.slug: m for m in ImageModel.objects.all()}
    assert {"painter-crisp", "painter-careful", "painter-dreamy", "painter-grainy", "painter-smudge"} == set(models)
    for model in models.values():
        assert model.source == str((tmp_path / "m" / model.slug).resolve())
        assert (tmp_path / "m" / model.slug).is_dir()
    assert first.count(" built ") == len(models)
    # Again: nothing rebuilt, still one row each; a deleted model directory is rebuilt.
    import shutil

    shutil.rmtree(tmp_path / "m" / "painter-dreamy")
    call_command("build_demo_models", "--dir", str(tmp_path / "m"))
    second = capsys.readouterr().out
    assert ImageModel.objects.count() == len(models)
    assert [line.split()[0] for line in second.splitlines() if " built " in line] == ["painter-dreamy"]
    assert not list((tmp_path / "m").glob("*.partial"))


# --- staff pages --------------------------------------------------------------------------

@pytest.fixture
def staff(client, django_user_model):
    client.force_login(staff_user("staff", roles=("Sweep runners",)))
    return client


def test_sweep_pages_need_staff(client, suite):
    response = client.get(reverse("generation:sweep_new"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_starts_a_sweep_and_watches_progress(staff, suite, django_capture_on_commit_callbacks):
    model = ImageModelFactory(name="Model X", width=64, height=64)
    assert "Model X" in staff.get(reverse("generation:sweep_new")).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(reverse("generation:sweep_new"), {
            "suite": suite.pk, "image_models": [model.pk], "seeds": 2, "image_format": "png",
        })
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("generation:sweep_detail", args=[sweep.pk])
    assert sweep.generations.count() == 8 and sweep.created_by.username == "staff"
    page = staff.get(response["Location"]).content.decode()
    assert "Model X" in page and 'hx-trigger="every 2s"' in page and "<html" in page
    partial = staff.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="sweep-progress"') and "<html" not in partial
    assert "0 done, 0 failed of 8" in partial


def test_sweep_form_shows_service_errors(staff):
    empty = PromptSuiteFactory(name="empty")
    model = ImageModelFactory()
    response = staff.post(reverse("generation:sweep_new"), {
        "suite": empty.pk, "image_models": [model.pk], "seeds": 1, "image_format": "png"})
    assert response.status_code == 200
    assert "Suite &#x27;empty&#x27; has no prompts." in response.content.decode()
    assert not Sweep.objects.exists()


def test_staff_retries_failed_images_from_the_sweep_page(staff, suite, django_capture_on_commit_callbacks):
    model = ImageModelFactory(name="Model Y")
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweep_create(suite=suite, image_models=[model], seeds=1)
    sweep.generations.update(status=GenerationStatus.FAILED, error="model y could not be loaded: gone",
                             attempts=1)
    page = staff.get(reverse("generation:sweep_detail", args=[sweep.pk])).content.decode()
    assert "model y could not be loaded: gone" in page and "Retry the 4 failed images" in page
    assert staff.get(reverse("generation:sweep_retry", args=[sweep.pk])).status_code == 405
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post(reverse("generation:sweep_retry", args=[sweep.pk]), follow=True)
    assert len(callbacks) == 1
    assert "4 failed image(s) sent back to the workers." in response.content.decode()
    assert set(sweep.generations.values_list("status", "attempts", "error")) == {("pending", 0, "")}
