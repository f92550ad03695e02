"""Issue 14, the Django half: EVALSITE_GPU_MEMORY_GIB reaches the worker's Engine; VRAM profiles are asked for,
run (on a CPU they fail cleanly with NoGPU's message), stored and read back; profile_vram's command-line contract."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from generation import selectors
from generation.engine.profile import SETTING_NAMES
from generation.models import Backend, VramProfile, VramProfileStatus
from generation.services import (
    VramProfileInvalid,
    rendering,
    vram_cards_parse,
    vram_profile_create,
    vram_profile_request,
    vram_profile_run,
    vram_settings_check,
)
from tests.factories import ImageModelFactory, staff_user, vram_report

NO_GPU = "profile_vram needs a CUDA GPU: this machine has none, so there is no VRAM to profile"

pytestmark = pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="these check what a machine without a CUDA GPU does"
)


# --------------------------------------------------------------------------- EVALSITE_GPU_MEMORY_GIB


def test_the_memory_setting_reaches_the_engine_the_worker_builds(settings, monkeypatch, caplog):
    """On a CPU the worker's Engine keeps the configured cap as its ceiling and applies none (no CUDA
    allocator to cap); the worker says so in its log. The GPU half is tests/generation/test_generation_gpu.py."""
    settings.GPU_MEMORY_GIB = 12.5
    settings.GPU_VRAM_BUDGET_GB = 0.0
    monkeypatch.setattr(rendering, "_engine", None)  # this process's worker Engine, built fresh
    with caplog.at_level(logging.WARNING, logger="generation.services.rendering"):
        engine = rendering.engine_get()
    try:
        assert engine.device == "cpu"
        assert engine.memory_cap_requested == engine.memory_ceiling_bytes == int(12.5 * 2**30)
        assert engine.memory_cap_bytes is None and engine.vram_budget_bytes is None  # nothing applies on a CPU
        assert "EVALSITE_GPU_MEMORY_GIB=12.5: no GPU memory cap applies on cpu" in caplog.text
    finally:
        engine.close()


def test_without_the_setting_the_worker_engine_has_no_ceiling(settings, monkeypatch):
    settings.GPU_MEMORY_GIB = 0.0
    monkeypatch.setattr(rendering, "_engine", None)
    engine = rendering.engine_get()
    try:
        assert engine.memory_ceiling_bytes is None and rendering.worker_memory_cap_bytes() is None
    finally:
        engine.close()


def test_a_negative_memory_setting_is_refused_at_start(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='evalsite.settings';django.setup()"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(django_settings.BASE_DIR),
             "EVALSITE_DATA_DIR": str(tmp_path), "EVALSITE_GPU_MEMORY_GIB": "-4"},
        capture_output=True, text=True, cwd=django_settings.BASE_DIR)
    assert done.returncode != 0
    assert "EVALSITE_GPU_MEMORY_GIB must be 0 (the whole card) or a positive GiB, not -4.0" in done.stderr


# --------------------------------------------------------------------------- input checks


def test_cards_are_parsed_sorted_and_checked():
    assert vram_cards_parse(text="24, 8,12,8") == [8, 12, 24]
    assert vram_cards_parse(text="7.5,16") == [7.5, 16]
    for bad, says in (("8,x", "card 'x' is not a number"), ("", "no card given"), ("0.5", "card 0.5 GB is not"),
                      ("800", "card 800 GB is not a card class"), ("nan", "card nan GB")):
        with pytest.raises(VramProfileInvalid, match=says):
            vram_cards_parse(text=bad)


def test_settings_are_the_profilers_names():
    assert vram_settings_check(names=["nf4", "bf16"]) == ["bf16", "nf4"]  # in the profiler's order
    with pytest.raises(VramProfileInvalid, match=r"unknown setting\(s\) 'fp8'.*known: bf16, nf4"):
        vram_settings_check(names=["fp8"])


@pytest.mark.django_db
def test_an_imported_model_is_not_profiled():
    model = ImageModelFactory(backend=Backend.IMPORTED)
    with pytest.raises(VramProfileInvalid, match="no worker renders it"):
        vram_profile_create(image_model=model)
    assert not VramProfile.objects.exists()


# --------------------------------------------------------------------------- request, task, run


@pytest.mark.django_db
def test_request_queues_the_task_on_the_gpu_queue_after_commit(django_capture_on_commit_callbacks):
    from evalsite.celery import app

    user = staff_user("runner", roles=("Sweep runners",))
    model = ImageModelFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        profile = vram_profile_request(image_model=model, cards=[24, 8], requested_by=user)
    assert len(callbacks) == 1  # sent only once the row is committed
    assert (profile.status, profile.cards, profile.requested_by, profile.verify) == ("queued", [8, 24], user, True)
    assert app.amqp.router.route({}, "generation.tasks.vram_profile")["queue"].name == "gpu"


@pytest.mark.django_db(transaction=True)
def test_the_queued_task_runs_and_a_cpu_worker_stores_no_gpu(tiny_models, eager):
    """The whole path with the real task (eager Celery) and the real Engine on this CPU: failed, NoGPU's message."""
    profile = vram_profile_request(image_model=tiny_models["tiny-flux"], cards=[8, 24])
    profile.refresh_from_db()
    assert profile.status == VramProfileStatus.FAILED and profile.error == NO_GPU
    assert profile.report == {} and profile.finished_at is not None and profile.worker
    assert selectors.vram_profile_latest_done(image_model=profile.image_model) is None
    assert selectors.vram_profile_latest(image_model=profile.image_model) == profile


@pytest.mark.django_db
def test_run_is_idempotent(tiny_models):
    profile = vram_profile_create(image_model=tiny_models["tiny-flux"], cards=[8])
    first = vram_profile_run(profile_id=profile.pk)
    assert first.status == "failed"
    VramProfile.objects.filter(pk=profile.pk).update(error="kept")
    again = vram_profile_run(profile_id=profile.pk)  # a redelivered task: the row is not queued any more
    assert again.status == "failed" and again.error == "kept"
    assert vram_profile_run(profile_id=10**9) is None


@pytest.mark.django_db
def test_cards_above_the_worker_ceiling_are_not_profiled(tiny_models, settings):
    """A worker capped at 10 GiB cannot measure a 24 GB card (every cap is held under its ceiling)."""
    settings.GPU_MEMORY_GIB = 10.0
    profile = vram_profile_create(image_model=tiny_models["tiny-flux"], cards=[24, 48])
    profile = vram_profile_run(profile_id=profile.pk)
    assert profile.status == "failed"
    assert "every card asked for (24, 48 GB) is above this worker's EVALSITE_GPU_MEMORY_GIB ceiling" in profile.error


@pytest.mark.django_db
def test_latest_done_profile_per_model():
    from datetime import timedelta

    from django.utils import timezone

    a, b, c = ImageModelFactory(), ImageModelFactory(), ImageModelFactory()
    now = timezone.now()
    old = VramProfile.objects.create(image_model=a, status="done", report=vram_report(min_card=(48, "bf16")),
                                     finished_at=now - timedelta(hours=2), cards=[8, 24, 48])
    new = VramProfile.objects.create(image_model=a, status="done", report=vram_report(), finished_at=now, cards=[8, 24, 48])
    VramProfile.objects.create(image_model=a, status="failed", error="x", finished_at=now + timedelta(minutes=1))
    VramProfile.objects.create(image_model=b, status="running")
    latest = selectors.vram_profiles_latest_done(model_ids=[a.pk, b.pk, c.pk])
    assert latest == {a.pk: new} and old.pk != new.pk
    fits = selectors.vram_profile_fits(profile=new)
    assert [(r["card_gb"], r["setting"], r["seconds"]) for r in fits] == [(8, None, None), (24, "nf4", 5.42),
                                                                         (48, "bf16", 5.12)]


# --------------------------------------------------------------------------- the command


@pytest.mark.django_db
def test_command_on_a_cpu_says_there_is_no_gpu_and_stores_nothing_done(tiny_models):
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("profile_vram", "--model", "tiny-flux", "--cards", "8,24", stdout=io.StringIO(), stderr=err)
    assert str(caught.value) == NO_GPU and caught.value.returncode == 1
    assert not VramProfile.objects.filter(status="done").exists()
    assert VramProfile.objects.get().error == NO_GPU


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_manage_py_profile_vram_on_a_cpu_is_one_line_and_exit_status_1(tmp_path):
    """The real command line: one stderr line, no traceback, status 1; bad input is named."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(django_settings.BASE_DIR),
           "EVALSITE_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
           "CELERY_BROKER_URL": f"filesystem://{tmp_path}/broker"}

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], env=env, capture_output=True, text=True,
                              cwd=django_settings.BASE_DIR, timeout=600)

    assert manage("migrate", "-v", "0").returncode == 0
    assert manage("build_demo_models").returncode == 0
    done = manage("profile_vram", "--model", "painter-crisp", "--cards", "8,12")
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.strip().splitlines() == [f"CommandError: {NO_GPU}"]
    bad = manage("profile_vram", "--model", "nope")
    assert bad.returncode == 1 and "unknown model slug 'nope' (known: " in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.django_db
def test_command_bad_input_is_a_clear_error(tiny_models, tmp_path):
    cases = [(["--model", "nope"], "unknown model slug 'nope' (known: "),
             (["--model", "tiny-flux", "--cards", "8,twelve"], "card 'twelve' is not a number of GB"),
             (["--model", "tiny-flux", "--cards", "8", "--try", "bf16,fp8"], "unknown setting(s) 'fp8'"),
             (["--model", "tiny-flux", "--json", str(tmp_path / "no" / "r.json")], "is not a directory")]
    for args, says in cases:
        with pytest.raises(CommandError, match=None) as caught:
            call_command("profile_vram", *args, stdout=io.StringIO(), stderr=io.StringIO())
        assert says in str(caught.value), (args, str(caught.value))
    assert not VramProfile.objects.exists()  # refused before anything was stored


@pytest.mark.django_db
def test_command_prints_the_table_of_a_finished_profile(tiny_models, monkeypatch):
    """The table the command prints from a stored report (the report of a GPU run, as profile() returns it)."""
    from generation.management.commands import profile_vram

    model = tiny_models["tiny-flux"]
    profile = VramProfile.objects.create(image_model=model, status="done", report=vram_report(), cards=[8, 24, 48])
    out = io.StringIO()
    command = profile_vram.Command(stdout=out)
    command._table(profile)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"{model.name} on NVIDIA H200 (1024x1024, 28 steps)")
    assert lines[2].split() == ["8GB", "does", "not", "fit"]
    assert lines[3].split() == ["24GB", "nf4", "5.42", "6.70", "/", "7.10"]
    assert "Min VRAM: 24 GB (nf4)" in lines and f"stored as VRAM profile {profile.pk}" in lines
    assert json.loads(json.dumps(profile.report)) == profile.report and SETTING_NAMES[0] == "bf16"


# --------------------------------------------------------------------------- a worker that died mid-profile


@pytest.mark.django_db(transaction=True)  # the heartbeat and the monitor write from their own threads
def test_a_running_profile_heartbeats_and_one_whose_worker_died_is_failed(tiny_models, settings):
    """Without a heartbeat for RENDER_STALE_SECONDS a running profile lost its process (killed, out of host
    memory): a GPU worker's monitor fails it with a message that says so, instead of "running" for ever. A
    profile whose process lives keeps beating; queued and finished profiles are left alone."""
    import time
    from datetime import timedelta

    from django.utils import timezone

    from generation.services import WorkerMonitor, vram_profiles_reconcile
    from generation.services.vram import _heartbeat

    settings.RENDER_STALE_SECONDS = 120
    model = tiny_models["tiny-flux"]
    start = timezone.now()
    long_ago = start - timedelta(seconds=600)

    def running(worker: str) -> VramProfile:
        profile = vram_profile_create(image_model=model, cards=[8])
        VramProfile.objects.filter(pk=profile.pk).update(status=VramProfileStatus.RUNNING, started_at=long_ago,
                                                         heartbeat_at=long_ago, worker=worker)
        return profile

    alive, dead = running("gpu-host:11"), running("gpu-host:12")
    queued = vram_profile_create(image_model=model, cards=[8])
    with _heartbeat(profile_id=alive.pk, interval=0.05):
        deadline = time.monotonic() + 10
        while VramProfile.objects.get(pk=alive.pk).heartbeat_at <= start and time.monotonic() < deadline:
            time.sleep(0.05)
    assert VramProfile.objects.get(pk=alive.pk).heartbeat_at > start

    assert vram_profiles_reconcile() == 1
    dead.refresh_from_db()
    assert dead.status == VramProfileStatus.FAILED and dead.finished_at is not None
    assert dead.error.startswith("Its worker gpu-host:12 stopped during the profile: no heartbeat since ")
    assert VramProfile.objects.get(pk=alive.pk).status == VramProfileStatus.RUNNING
    assert VramProfile.objects.get(pk=queued.pk).status == VramProfileStatus.QUEUED
    assert vram_profiles_reconcile() == 0  # nothing twice

    # a GPU worker's monitor thread runs that reconcile
    VramProfile.objects.filter(pk=alive.pk).update(heartbeat_at=long_ago)
    monitor = WorkerMonitor(worker="gpu-host:13", interval=0.05, reconcile_every=0.05)
    monitor.start()  # as a worker starts it (its connections close when it stops)
    try:
        deadline = time.monotonic() + 30
        while VramProfile.objects.get(pk=alive.pk).status == VramProfileStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        monitor.stop()
        monitor.join(timeout=30)
    assert VramProfile.objects.get(pk=alive.pk).status == VramProfileStatus.FAILED


@pytest.mark.django_db
def test_the_model_page_says_when_a_running_profile_was_last_heard_from(tiny_models, client):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    model = tiny_models["tiny-flux"]
    profile = vram_profile_create(image_model=model, cards=[8])
    beat = timezone.now() - timedelta(minutes=3)
    VramProfile.objects.filter(pk=profile.pk).update(status=VramProfileStatus.RUNNING, started_at=beat,
                                                     heartbeat_at=beat, worker="gpu-host:11")
    client.force_login(staff_user("runner", roles=("Sweep runners",)))
    page = client.get(reverse("generation:model_detail", args=[model.pk])).content.decode()
    assert 'id="profile-heartbeat"' in page and "last heard from 3\xa0minutes ago" in page
