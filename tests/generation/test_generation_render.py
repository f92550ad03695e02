"""Rendering chunks with the real engine on the tiny pipelines (CPU): saving, idempotency,
broken specs, out-of-memory fallback, the attempts cap and reconcile of lost workers."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from generation.engine import Engine, OutOfMemory
from generation.models import Generation, GenerationStatus, ImageModel, SweepStatus
from generation.selectors import sweep_progress, sweep_totals
from generation.services import (
    generation_chunk_render,
    generations_claim,
    render_chunks,
    sweep_create,
    sweep_reconcile,
)

pytestmark = pytest.mark.django_db


def _sweep(suite, models, seeds=1, **kwargs):
    """A sweep whose chunks are not sent anywhere (tests render them by hand)."""
    return sweep_create(suite=suite, image_models=models, seeds=seeds, **kwargs)


def _render_all(sweep, engine, worker="test-host:1"):
    rows = sweep.generations.order_by("model__name", "model_id", "prompt__position", "seed")
    return [
        generation_chunk_render(sweep_id=sweep.pk, model_id=model_id, generation_ids=ids, worker=worker, engine=engine)
        for model_id, ids in render_chunks(generations=rows)
    ]


def _assert_blind_image(generation, *, width, height, fmt="PNG"):
    assert f"/{generation.public_id}." in f"/{generation.image.name}"
    assert generation.model.slug not in generation.image.name
    with generation.image.open("rb") as fh:
        data = fh.read()
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size, image.mode) == (fmt, (width, height), "RGB")
    assert image.info == {} and not getattr(image, "text", {})  # no text chunks, EXIF, ICC, dpi or gamma
    return data


def test_chunk_render_saves_normalised_images_with_measurements(suite, tiny_models, cpu_engine, settings):
    settings.RENDER_CHUNK_SIZE = 3
    models = [tiny_models["tiny-sd3"], tiny_models["tiny-zimage"]]
    sweep = _sweep(suite, models, seeds=[0, 7], canvas_width=64, canvas_height=64)
    assert sweep.generations.count() == 2 * len(suite.prompts.all()) * 2
    results = _render_all(sweep, cpu_engine)
    assert len(results) == 4  # 4 prompts / 3 per chunk = 2 chunks per model
    assert sum(r.done for r in results) == 16 and sum(r.failed for r in results) == 0
    sizes = set()
    for generation in Generation.objects.filter(sweep=sweep).select_related("model"):
        assert generation.status == GenerationStatus.DONE, generation.error
        _assert_blind_image(generation, width=64, height=64)
        assert generation.seconds > 0
        assert generation.device == "cpu" and generation.gpu_name == ""
        assert generation.peak_vram_allocated is None and generation.peak_vram_reserved is None  # n/a on CPU
        assert generation.worker == "test-host:1" and generation.attempts == 1
        snapshot = generation.settings_snapshot
        assert snapshot["spec"]["slug"] == generation.model.slug
        assert snapshot["spec"]["num_inference_steps"] == generation.model.num_inference_steps
        assert snapshot["environment"]["torch"] and snapshot["environment"]["diffusers"]
        assert snapshot["canvas"] == {"width": 64, "height": 64, "format": "png"}
        sizes.add((generation.model.slug, generation.native_width))
    assert sizes == {("tiny-sd3", 64), ("tiny-zimage", 32)}  # rendered natively, then one canvas
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.DONE and sweep.finished_at is not None
    assert sweep_totals(sweep=sweep)["finished"]


def test_same_seed_same_image_and_seeds_differ(suite, tiny_models, cpu_engine):
    model = tiny_models["tiny-flux"]
    first = _sweep(suite, [model], seeds=[1, 2])
    second = _sweep(suite, [model], seeds=[1])
    _render_all(first, cpu_engine)
    _render_all(second, cpu_engine)
    prompt = suite.prompts.first()

    def pixels(sweep, seed):
        g = Generation.objects.get(sweep=sweep, prompt=prompt, seed=seed)
        return Image.open(g.image.open("rb")).tobytes()

    assert pixels(first, 1) == pixels(second, 1)
    assert pixels(first, 1) != pixels(first, 2)


def test_rerunning_a_chunk_skips_done_images_and_writes_nothing_twice(suite, tiny_models, cpu_engine, settings):
    sweep = _sweep(suite, [tiny_models["tiny-zimage"]])
    _render_all(sweep, cpu_engine)
    before = {g.pk: (g.image.name, g.finished_at) for g in sweep.generations.all()}
    results = _render_all(sweep, cpu_engine, worker="other-host:2")
    assert [(r.claimed, r.skipped, r.done) for r in results] == [(0, 4, 0)]
    after = {g.pk: (g.image.name, g.finished_at) for g in sweep.generations.all()}
    assert after == before
    files = list((settings.MEDIA_ROOT / "g").rglob("*.*"))
    assert len(files) == 4


def test_broken_model_specs_fail_their_images_and_spare_the_others(suite, tiny_models, cpu_engine, tiny_dir):
    missing = ImageModel.objects.create(slug="missing", name="Missing", source="/nonexistent/model/dir",
                                        pipeline_class="FluxPipeline", width=64, height=64, num_inference_steps=2)
    wrong_class = ImageModel.objects.create(slug="wrong-class", name="Wrong class", source=str(tiny_dir / "tiny-sd3"),
                                            pipeline_class="FluxPipeline", width=64, height=64, num_inference_steps=2)
    good = tiny_models["tiny-sd3"]
    sweep = _sweep(suite, [missing, good, wrong_class], canvas_width=64, canvas_height=64)
    _render_all(sweep, cpu_engine)
    failed = Generation.objects.filter(sweep=sweep, model=missing)
    assert {g.status for g in failed} == {GenerationStatus.FAILED}
    assert all("could not be loaded" in g.error and "/nonexistent/model/dir" in g.error for g in failed)
    wrong = Generation.objects.filter(sweep=sweep, model=wrong_class)
    assert {g.status for g in wrong} == {GenerationStatus.FAILED}
    assert all(g.error.startswith("model wrong-class could not be loaded: ") for g in wrong), wrong[0].error
    assert {g.status for g in Generation.objects.filter(sweep=sweep, model=good)} == {GenerationStatus.DONE}
    progress = {row["model_slug"]: row for row in sweep_progress(sweep=sweep)}
    assert (progress["missing"]["failed"], progress["tiny-sd3"]["done"]) == (4, 4)
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.FAILED  # done with failures


class OutOfMemoryOn(Engine):
    """The real CPU engine, except that `slugs` raise OutOfMemory after `after` images, as the
    engine does once its reload with CPU offload also runs out of memory in the middle of a chunk."""

    def __init__(self, *, slugs, after=0):
        super().__init__(device="cpu")
        self.slugs, self.after = set(slugs), after

    def render(self, spec, requests, **kwargs):
        for index, outcome in enumerate(super().render(spec, requests, **kwargs)):
            if spec.slug in self.slugs and index >= self.after:
                raise OutOfMemory(f"model {spec.slug!r} ran out of GPU memory even with model CPU offload")
            yield outcome


def _inject_cuda_oom(monkeypatch, *, slugs, even_offloaded):
    """The real engine, whose loaded denoiser raises torch's CUDA OutOfMemoryError for `slugs` (a CPU
    can't run out of CUDA memory); the engine's own reload with model CPU offload then runs for real."""
    import torch

    from generation.engine import loading

    real_load = loading.load
    offloads = []

    def load(spec, *, device, offload=None, **kwargs):
        loaded = real_load(spec, device=device, offload=offload, **kwargs)
        if spec.slug in slugs:
            offloads.append(loaded.offload)
            if loaded.offload == "none" or even_offloaded:
                def oom(*args, **kwargs):
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")

                loaded.model.transformer.forward = oom
        return loaded

    monkeypatch.setattr(loading, "load", load)
    return offloads


def test_out_of_memory_first_retries_with_cpu_offload(suite, tiny_models, monkeypatch):
    offloads = _inject_cuda_oom(monkeypatch, slugs={"tiny-sd3"}, even_offloaded=False)
    model = tiny_models["tiny-sd3"]
    model.fallback = tiny_models["tiny-zimage"]
    model.save()
    sweep = _sweep(suite, [model])
    _render_all(sweep, Engine(device="cpu"))
    assert offloads == ["none", "model"]
    rows = list(Generation.objects.filter(sweep=sweep))
    assert all(g.status == GenerationStatus.DONE and g.offload_used == "model" for g in rows)
    assert all(g.fallback_used is None and g.native_width == 64 for g in rows)  # offload was enough


def test_out_of_memory_even_offloaded_renders_with_the_fallback_model(suite, tiny_models, monkeypatch):
    offloads = _inject_cuda_oom(monkeypatch, slugs={"tiny-sd3"}, even_offloaded=True)
    big, fallback, other = tiny_models["tiny-sd3"], tiny_models["tiny-zimage"], tiny_models["tiny-flux"]
    big.fallback = fallback
    big.save()
    sweep = _sweep(suite, [big, other], canvas_width=64, canvas_height=64)
    _render_all(sweep, Engine(device="cpu"))
    assert offloads == ["none", "model"]  # offload was tried before falling back
    rows = list(Generation.objects.filter(sweep=sweep, model=big))
    for g in rows:
        assert g.status == GenerationStatus.DONE and g.fallback_used == fallback
        assert g.native_width == 32 and g.settings_snapshot["fallback_for"] == "tiny-sd3"
        _assert_blind_image(g, width=64, height=64)
    others = Generation.objects.filter(sweep=sweep, model=other)
    assert {(g.status, g.fallback_used_id) for g in others} == {(GenerationStatus.DONE, None)}


def test_out_of_memory_mid_chunk_keeps_rendered_images_and_falls_back_for_the_rest(suite, tiny_models):
    fallback = tiny_models["tiny-zimage"]
    big = tiny_models["tiny-sd3"]
    big.fallback = fallback
    big.save()
    sweep = _sweep(suite, [big], canvas_width=64, canvas_height=64)
    engine = OutOfMemoryOn(slugs={"tiny-sd3"}, after=1)
    _render_all(sweep, engine)
    rows = list(Generation.objects.filter(sweep=sweep).order_by("prompt__position"))
    assert all(g.status == GenerationStatus.DONE for g in rows)
    assert rows[0].fallback_used is None and rows[0].native_width == 64  # rendered before the OOM
    for g in rows[1:]:
        assert g.fallback_used == fallback and g.model == big
        assert g.native_width == 32  # really rendered by the fallback
        assert g.settings_snapshot["spec"]["slug"] == "tiny-zimage"
        assert g.settings_snapshot["fallback_for"] == "tiny-sd3"
        _assert_blind_image(g, width=64, height=64)
    assert sweep_progress(sweep=sweep)[0]["fallback_used"] == 3


def test_out_of_memory_without_fallback_fails_the_images_with_the_error(suite, tiny_models, monkeypatch):
    _inject_cuda_oom(monkeypatch, slugs={"tiny-sd3"}, even_offloaded=True)
    model = tiny_models["tiny-sd3"]
    other = tiny_models["tiny-flux"]
    sweep = _sweep(suite, [model, other])
    _render_all(sweep, Engine(device="cpu"))
    failed = Generation.objects.filter(sweep=sweep, model=model)
    assert {g.status for g in failed} == {GenerationStatus.FAILED}
    assert all("no fallback model" in g.error and "out of GPU memory" in g.error for g in failed)
    assert {g.status for g in Generation.objects.filter(sweep=sweep, model=other)} == {GenerationStatus.DONE}


def test_out_of_memory_in_the_fallback_too_fails_with_both_errors(suite, tiny_models, monkeypatch):
    _inject_cuda_oom(monkeypatch, slugs={"tiny-sd3", "tiny-zimage"}, even_offloaded=True)
    model, fallback = tiny_models["tiny-sd3"], tiny_models["tiny-zimage"]
    model.fallback = fallback
    model.save()
    sweep = _sweep(suite, [model])
    _render_all(sweep, Engine(device="cpu"))
    errors = {g.error for g in Generation.objects.filter(sweep=sweep)}
    assert len(errors) == 1
    assert "the fallback tiny-zimage failed too" in errors.pop()


def test_claims_count_attempts_and_give_up_after_the_cap(suite, tiny_models, settings):
    settings.RENDER_MAX_ATTEMPTS = 2
    sweep = _sweep(suite, [tiny_models["tiny-zimage"]])
    ids = list(sweep.generations.values_list("pk", flat=True))
    for attempt in (1, 2):
        claimed = generations_claim(generation_ids=ids, worker=f"dead:{attempt}")
        assert len(claimed) == 4 and all(g.attempts == attempt for g in claimed)
        # A second worker gets nothing while the first holds the images.
        assert generations_claim(generation_ids=ids, worker="rival:9") == []
        Generation.objects.filter(pk__in=ids).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        if attempt == 1:
            assert sweep_reconcile(sweep=sweep) == 4
    # Lost twice with a cap of 2: reconcile fails them instead of re-enqueuing.
    assert sweep_reconcile(sweep=sweep) == 0
    rows = list(Generation.objects.filter(pk__in=ids))
    assert {g.status for g in rows} == {GenerationStatus.FAILED}
    assert all("gave up after 2 attempts" in g.error for g in rows)


def test_reconcile_leaves_live_workers_alone_and_requeues_lost_ones(
    suite, tiny_models, cpu_engine, settings, django_capture_on_commit_callbacks
):
    settings.RENDER_STALE_SECONDS = 60
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the re-enqueued chunk renders in-process, for real
    from evalsite.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=False):  # don't render the fresh sweep yet
            sweep = _sweep(suite, [tiny_models["tiny-zimage"]])
        ids = list(sweep.generations.order_by("pk").values_list("pk", flat=True))
        generations_claim(generation_ids=ids[:2], worker="live:1")
        generations_claim(generation_ids=ids[2:], worker="dead:2")
        Generation.objects.filter(pk__in=ids[2:]).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep_reconcile(sweep=sweep) == 2
        statuses = dict(Generation.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert [statuses[pk] for pk in ids] == ["running", "running", "done", "done"]
        assert set(Generation.objects.filter(pk__in=ids[2:]).values_list("attempts", flat=True)) == {2}
    finally:
        app.conf.task_always_eager = False


def test_failed_images_can_be_retried_after_fixing_the_model(suite, tiny_models, cpu_engine, tiny_dir,
                                                            django_capture_on_commit_callbacks):
    broken = ImageModel.objects.create(slug="moved", name="Moved", source="/models/were/here",
                                       pipeline_class="ZImagePipeline", width=32, height=32, num_inference_steps=2)
    sweep = _sweep(suite, [broken, tiny_models["tiny-flux"]])
    _render_all(sweep, cpu_engine)
    assert sweep.generations.filter(status=GenerationStatus.FAILED).count() == 4
    done_before = dict(sweep.generations.filter(status=GenerationStatus.DONE).values_list("pk", "image"))
    broken.source = str(tiny_dir / "tiny-zimage")
    broken.save()
    from generation.services import sweep_retry_failed

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert sweep_retry_failed(sweep=sweep) == 4
    assert len(callbacks) == 1
    _render_all(sweep, cpu_engine)
    assert sweep.generations.filter(status=GenerationStatus.DONE).count() == 8
    retried = sweep.generations.filter(model=broken)
    assert all(g.error == "" and g.attempts == 1 and g.image for g in retried)
    assert dict(sweep.generations.filter(pk__in=done_before).values_list("pk", "image")) == done_before
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.DONE
