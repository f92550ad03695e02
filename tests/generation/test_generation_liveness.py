"""Worker liveness in one process: progress reported by the real engine, heartbeats that follow it,
the watchdog limit and its firing, and reconcile of chunks a worker received but never claimed.
(The same with real worker processes, on Redis and on the filesystem broker: test_generation_worker.py.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from generation.engine import Engine, RenderRequest
from generation.models import Generation, GenerationStatus
from generation.services import (
    Liveness,
    WorkerMonitor,
    generation_chunk_render,
    generations_claim,
    image_model_register_demo,
    image_model_spec,
    render_chunks,
    sweep_create,
    sweep_reconcile,
    watchdog_limit,
)
from tests.factories import PromptFactory, PromptSuiteFactory
from tests.generation.stall import MODEL, build_stall_pipeline

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stall_model(settings):
    return image_model_register_demo(demo=MODEL, path=build_stall_pipeline(Path(settings.MODEL_DIR) / "stall"))


def test_watchdog_limit_is_a_multiple_of_the_measured_time_with_a_floor(settings):
    settings.RENDER_WATCHDOG_SECONDS = 0
    settings.RENDER_WATCHDOG_FACTOR, settings.RENDER_WATCHDOG_FLOOR_SECONDS = 10, 120
    assert watchdog_limit(seconds=[5.0, 9.0, 30.0], slug="flux")[0] == 120  # 10 × 9 s = 90 s < the floor
    limit, why = watchdog_limit(seconds=[20.0, 25.0, 30.0], slug="flux")
    assert limit == 250 and why == "10 × 25.00 s/image measured for flux"
    limit, why = watchdog_limit(seconds=[], slug="new")
    assert limit == 1200 and "new has no measured image yet" in why
    settings.RENDER_WATCHDOG_SECONDS = 7
    assert watchdog_limit(seconds=[20.0], slug="flux") == (7, "EVALSITE_RENDER_WATCHDOG_SECONDS=7")


def test_heartbeats_follow_progress_and_the_watchdog_sees_a_stuck_image(settings):
    settings.RENDER_WATCHDOG_SECONDS = 30
    settings.RENDER_LOAD_WATCHDOG_SECONDS = 600
    clock = Clock()
    state = Liveness(clock=clock)
    assert state.due(since=0) == ([], None)  # idle: nothing held, nothing beats
    assert state.idle_since is None  # not consuming yet: idle proves nothing until the worker is ready
    state.ready()
    assert state.idle_since is not None
    state.chunk_start(sweep_id=1, slug="m", generation_ids=[11, 12, 13], seconds=[])
    clock.now += 500
    assert state.due(since=clock.now - 1) == ([11, 12, 13], None)  # a load is progress, up to its limit
    clock.now += 101
    beat, overdue = state.due(since=clock.now - 1)
    assert beat == [] and overdue.what == "load" and "did not load within 600 s" in overdue.message(slug="m")
    state.chunk_start(sweep_id=1, slug="m", generation_ids=[11, 12, 13], seconds=[])
    state.progress("11", 0)
    state.progress("11", 1)
    since = clock.now
    clock.now += 5
    assert state.due(since=since - 1) == ([11, 12, 13], None)  # a step since the last beat: all of the chunk
    assert state.due(since=since) == ([11], None)  # no progress: only the image on the engine stays alive
    state.progress("11", None)
    state.progress("12", 0)
    since = clock.now
    clock.now += 29
    assert state.due(since=since) == ([12], None)
    clock.now += 2
    beat, overdue = state.due(since=since)
    assert beat == [] and (overdue.what, overdue.generation_id, overdue.limit) == ("image", 12, 30)
    assert "did not finish within 30 s (EVALSITE_RENDER_WATCHDOG_SECONDS=30)" in overdue.message(slug="m")
    state.chunk_end()
    assert state.due(since=0) == ([], None) and state.idle_since is not None


def test_the_engine_reports_start_steps_and_finish(tiny_models, stall_model):
    events: list[tuple[str, int | None]] = []
    engine = Engine(device="cpu")
    for slug, with_steps in (("tiny-sd3", True), ("stall", True), ("tiny-hunyuan", False)):
        model = stall_model if slug == "stall" else tiny_models[slug]
        steps = [0, *range(1, model.num_inference_steps + 1), None] if with_steps else [0, None]
        events.clear()
        outcomes = list(engine.render(image_model_spec(model=model), [RenderRequest(key="7", prompt="a cube", seed=1)],
                                      progress=lambda key, step: events.append((key, step))))
        assert outcomes[0].error == "" and outcomes[0].image is not None
        # steps from callback_on_step_end where the pipeline takes one; start and finish always
        assert events == [("7", s) for s in steps], slug


def test_the_watchdog_fails_the_hung_image_and_hands_the_rest_back(suite, stall_model, eager, settings, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    """The monitor's watchdog, run in the test's thread (the recycle is recorded, not executed)."""
    monkeypatch.setattr("generation.services.liveness.close_old_connections", lambda: None)  # the test's connection
    settings.RENDER_WATCHDOG_SECONDS = 5
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweep_create(suite=suite, image_models=[stall_model], seeds=1, canvas_width=64, canvas_height=64)
    ids = list(sweep.generations.order_by("prompt__position").values_list("pk", flat=True))
    generations_claim(generation_ids=ids, worker="w:1")
    clock = Clock()
    state = Liveness(clock=clock)
    state.chunk_start(sweep_id=sweep.pk, slug="stall", generation_ids=ids, seconds=[])
    state.progress(str(ids[0]), 0)
    state.progress(str(ids[0]), None)
    state.progress(str(ids[1]), 0)
    clock.now += 6
    recycled = []
    WorkerMonitor(worker="w:1", interval=0.01, state=state, recycle=lambda: recycled.append(1)).run()
    assert recycled == [1]
    rows = {g.pk: g for g in Generation.objects.filter(pk__in=ids)}
    hung = rows[ids[1]]
    assert hung.status == GenerationStatus.FAILED
    assert hung.error.startswith("watchdog: the pipeline call of stall did not finish within 5 s")
    # the others went back to the queue and (eager) rendered in this process, once each
    assert [rows[pk].status for pk in ids if pk != ids[1]] == [GenerationStatus.DONE] * 3
    assert all(rows[pk].attempts == 2 for pk in ids if pk != ids[1])


def _two_chunk_sweep(django_capture_on_commit_callbacks, tiny_models):
    suite = PromptSuiteFactory(name="claims")
    for position in (1, 2):
        PromptFactory(suite=suite, position=position, text=f"prompt {position}")
    with django_capture_on_commit_callbacks(execute=False):
        sweep = sweep_create(suite=suite, image_models=[tiny_models["tiny-sd3"], tiny_models["tiny-zimage"]], seeds=1,
                             canvas_width=64, canvas_height=64)
    rows = sweep.generations.order_by("model__name", "model_id", "prompt__position", "seed")
    return sweep, render_chunks(generations=rows)


def test_reconcile_resends_a_chunk_received_but_never_claimed_and_renders_it_once(
    tiny_models, cpu_engine, settings, django_capture_on_commit_callbacks
):
    settings.RENDER_CLAIM_TIMEOUT_SECONDS = 60
    sweep, ((model_a, lost), (model_b, later)) = _two_chunk_sweep(django_capture_on_commit_callbacks, tiny_models)
    now = timezone.now()
    Generation.objects.filter(pk__in=lost).update(enqueued_at=now - timedelta(seconds=90))
    Generation.objects.filter(pk__in=later).update(enqueued_at=now - timedelta(seconds=80))
    # Nobody claimed anything yet: a queue that is only slow must not be re-sent.
    assert sweep_reconcile(sweep=sweep, now=now) == 0
    # A worker idle for less than the timeout (it may be about to receive it) proves nothing either.
    assert sweep_reconcile(sweep=sweep, now=now, idle_since=now - timedelta(seconds=30)) == 0
    # The queue moved past the chunk (a chunk sent after it was claimed): it was lost.
    generations_claim(generation_ids=later, worker="w:2")
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_reconcile(sweep=sweep, now=now) == len(lost)
    assert len(sent) == 1
    assert sweep_reconcile(sweep=sweep, now=now) == 0  # re-sent now: not again before the timeout
    # The re-sent copy renders the images; the late original (Redis redelivers it hours later) claims nothing.
    first = generation_chunk_render(sweep_id=sweep.pk, model_id=model_a, generation_ids=lost, worker="w:2",
                                    engine=cpu_engine)
    late = generation_chunk_render(sweep_id=sweep.pk, model_id=model_a, generation_ids=lost, worker="w:3",
                                   engine=cpu_engine)
    assert (first.done, late.claimed, late.skipped) == (len(lost), 0, len(lost))
    assert set(Generation.objects.filter(pk__in=lost).values_list("attempts", "status")) == {(1, "done")}


def test_an_idle_worker_resends_a_lost_last_chunk(tiny_models, settings, django_capture_on_commit_callbacks):
    settings.RENDER_CLAIM_TIMEOUT_SECONDS = 60
    sweep, ((_, lost), (_, later)) = _two_chunk_sweep(django_capture_on_commit_callbacks, tiny_models)
    now = timezone.now()
    Generation.objects.filter(pk__in=lost + later).update(enqueued_at=now - timedelta(seconds=90))
    # The caller is a worker that has been idle (an empty queue) since before the timeout: both were lost.
    with django_capture_on_commit_callbacks(execute=False):
        assert sweep_reconcile(sweep=sweep, now=now, idle_since=now - timedelta(seconds=70)) == len(lost + later)
    assert set(Generation.objects.filter(pk__in=lost + later).values_list("enqueued_at", flat=True)) == {now}



@pytest.mark.parametrize(("queues", "expected"), [(["gpu"], True), (["gpu", "default"], True), (["default"], False),
                                                   (None, False)])
def test_the_monitor_runs_only_in_a_worker_that_renders(queues, expected):
    """`-Q gpu` (a GPU worker, or make demo's gpu,default) starts the monitor; compose's results worker (`-Q default`,
    the web image without torch) does not, nor a worker without -Q (it takes the default queue only)."""
    from types import SimpleNamespace

    from celery import Celery

    from generation.tasks import renders

    app = Celery("monitor-test", set_as_current=False)
    app.conf.task_default_queue = "default"
    app.conf.task_routes = {"generation.tasks.*": {"queue": "gpu"}}
    if queues is not None:
        for name in queues:
            app.amqp.queues.add(name)  # what the worker's -Q does: select among the known queues
        app.amqp.queues.select(queues)
    assert renders(SimpleNamespace(app=app)) is expected
    assert renders(SimpleNamespace()) is True  # queues unreadable: the monitor starts as before
