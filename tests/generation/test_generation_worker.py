"""End to end through a REAL Celery worker process (`celery -A evalsite worker -Q gpu --pool=solo`):

- against real PostgreSQL + Redis (marked `services`): a sweep of tiny models renders completely;
  a worker SIGKILLed mid-chunk is replaced and the sweep completes with no missing and no
  duplicate image (reconcile re-enqueues the dead worker's images once its heartbeat is stale);
- on the embedded defaults (SQLite file + filesystem:// broker), as `make demo` runs it;
- liveness, on both: a pipeline that hangs fails its image with the watchdog's message and the
  recycled worker renders the rest; a worker killed between receiving a chunk and claiming its
  images (EVALSITE_TEST_EXIT_BEFORE_CLAIM) loses nothing: reconcile re-sends the chunk and every
  image is rendered exactly once.

The engine is the real one, on the tiny offline pipelines (and a tiny pipeline that blocks); nothing
is mocked.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from PIL import Image

from generation.models import Generation, GenerationStatus, Sweep, SweepStatus
from generation.services import image_model_register_demo, sweep_create
from tests.factories import PromptFactory, PromptSuiteFactory
from tests.generation.stall import HANG, MODEL, build_stall_pipeline

BASE_DIR = Path(django_settings.BASE_DIR)
WORKER_ENV = {
    "EVALSITE_RENDER_HEARTBEAT_SECONDS": "1",
    "EVALSITE_RENDER_STALE_SECONDS": "6",
    "EVALSITE_RENDER_CLAIM_TIMEOUT_SECONDS": "3",
    "CELERY_TASK_ALWAYS_EAGER": "0",
    "PYTHONUNBUFFERED": "1",
}


def _start_worker(*, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The production worker command line, in its own process group (so SIGKILL takes it all)."""
    name = f"gen-test-{uuid.uuid4().hex[:8]}@%h"
    command = [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-Q", "gpu", "--pool=solo", "-c", "1",
               "-n", name, "--without-gossip", "--without-mingle", "-l", "INFO"]
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _check_images(rows: list[dict], media_root: Path, *, width: int, height: int, failed: int = 0) -> None:
    """Every image done (but ``failed`` ones), one file each (no duplicates, no strays), same size and
    format, no metadata, and every row measured: seconds, VRAM n/a on CPU, device, worker, snapshot."""
    assert rows
    assert sum(row["status"] == "failed" for row in rows) == failed, [r["error"] for r in rows]
    rows = [row for row in rows if row["status"] != "failed"]
    assert all(row["status"] == "done" for row in rows), [r["error"] for r in rows if r["status"] != "done"]
    names = [row["image"] for row in rows]
    assert len(set(names)) == len(names)
    on_disk = sorted(str(p.relative_to(media_root)) for p in (media_root / "g").rglob("*") if p.is_file())
    assert on_disk == sorted(names)
    for row in rows:
        assert row["image"] == f"g/{row['public_id'][:2]}/{row['public_id']}.png"
        image = Image.open(io.BytesIO((media_root / row["image"]).read_bytes()))
        assert (image.format, image.size, image.mode, image.info) == ("PNG", (width, height), "RGB", {})
        assert row["seconds"] > 0 and row["device"] == "cpu" and row["gpu_name"] == ""
        assert row["peak_vram_allocated"] is None and row["peak_vram_reserved"] is None
        assert row["worker"]
        snapshot = row["settings_snapshot"]
        assert snapshot["spec"]["source"] and snapshot["environment"]["torch"]


def _wait_for(predicate, *, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n--- worker log ---\n{tail}")


def _sweep_finished(sweep, *, log: Path) -> str:
    """The sweep's final status. A worker derives it after the chunk's last image is saved (a separate commit):
    right after the images all finished it may still say running for a moment (longer on a loaded machine)."""
    _wait_for(lambda: Sweep.objects.filter(pk=sweep.pk).exclude(
        status__in=(SweepStatus.PENDING, SweepStatus.RUNNING)).exists(), timeout=60, what="the sweep's final status",
        log=log)
    sweep.refresh_from_db()
    return sweep.status


# --------------------------------------------------------------------------- PostgreSQL + Redis

@pytest.fixture
def service_env(transactional_db, settings):
    """Environment for a worker that shares this test's PostgreSQL test database, Redis db and media."""
    from django.db import connection

    from evalsite.celery import app

    with app.connection_for_write() as conn:  # no chunk left over from an earlier run (ids are reused)
        conn.default_channel.queue_declare(queue="gpu", durable=True, auto_delete=False)
        conn.default_channel.queue_purge("gpu")
        conn.default_channel.client.delete("unacked", "unacked_index")  # nor one received by a dead worker
    db = connection.settings_dict
    from urllib.parse import quote

    auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, **WORKER_ENV, "DATABASE_URL": url, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    return env


@pytest.fixture
def workers(service_env, tmp_path):
    started: list[subprocess.Popen] = []

    def start(**extra: str) -> subprocess.Popen:
        process = _start_worker(env={**service_env, **extra}, log=tmp_path / "worker.log")
        started.append(process)
        return process

    start.log = tmp_path / "worker.log"
    yield start
    for process in started:
        _stop(process)


def _rows(sweep) -> list[dict]:
    return list(Generation.objects.filter(sweep=sweep).values(
        "public_id", "status", "image", "error", "seconds", "device", "gpu_name", "peak_vram_allocated",
        "peak_vram_reserved", "worker", "settings_snapshot", "attempts",
    ))


@pytest.mark.services
@pytest.mark.slow
def test_real_worker_renders_a_suite_with_tiny_models(suite, tiny_models, workers, settings):
    workers()
    sweep = sweep_create(suite=suite, image_models=[tiny_models["tiny-sd3"], tiny_models["tiny-flux"],
                                                     tiny_models["tiny-hunyuan"]], seeds=2,
                         canvas_width=64, canvas_height=64)
    done = GenerationStatus.DONE
    _wait_for(lambda: not Generation.objects.filter(sweep=sweep).exclude(status=done).exists(),
              timeout=240, what="the sweep to finish", log=workers.log)
    rows = _rows(sweep)
    assert len(rows) == 3 * 4 * 2
    _check_images(rows, Path(settings.MEDIA_ROOT), width=64, height=64)
    assert len({row["worker"] for row in rows}) == 1 and all(row["attempts"] == 1 for row in rows)
    assert _sweep_finished(sweep, log=workers.log) == SweepStatus.DONE


@pytest.mark.services
@pytest.mark.slow
def test_sigkilled_worker_is_replaced_and_the_sweep_completes_once(suite, tiny_models, workers, settings):
    settings.RENDER_CHUNK_SIZE = 4  # one chunk per model: 4 prompts × 3 seeds = 12 images
    first = workers()
    sweep = sweep_create(suite=suite, image_models=[tiny_models["tiny-sd3"], tiny_models["tiny-zimage"]], seeds=3,
                         canvas_width=64, canvas_height=64)
    gens = Generation.objects.filter(sweep=sweep)

    def mid_chunk():
        return (gens.filter(status=GenerationStatus.DONE).count() >= 2
                and gens.filter(status=GenerationStatus.RUNNING).count() >= 4)

    _wait_for(mid_chunk, timeout=240, what="the first chunk to be half rendered", log=workers.log)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    held = list(gens.filter(status=GenerationStatus.RUNNING).values_list("pk", flat=True))
    assert held, "the kill must land mid-chunk"
    done_before = gens.filter(status=GenerationStatus.DONE).count()
    assert 0 < done_before < 24

    workers()  # a new worker: reconcile re-enqueues the dead worker's images once their heartbeat is stale
    _wait_for(lambda: not gens.exclude(status=GenerationStatus.DONE).exists(),
              timeout=240, what="the sweep to finish after the kill", log=workers.log)
    rows = _rows(sweep)
    assert len(rows) == 24
    _check_images(rows, Path(settings.MEDIA_ROOT), width=64, height=64)
    assert set(Generation.objects.filter(pk__in=held).values_list("attempts", flat=True)) == {2}
    assert len({row["worker"] for row in rows}) == 2  # both workers rendered part of it
    assert _sweep_finished(sweep, log=workers.log) == SweepStatus.DONE


# --------------------------------------------------------------------------- embedded defaults

def _manage(env, *args, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture
def embedded(tmp_path, tiny_dir):
    """A fresh embedded install (SQLite file, filesystem broker, local media) with a suite and the demo models."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT")}
    env.update(WORKER_ENV, EVALSITE_DATA_DIR=str(data), EVALSITE_MODEL_DIR=str(tiny_dir))
    _manage(env, "migrate", "-v", "0")
    _manage(env, "shell", "-c", (
        "from prompts.models import PromptSuite, Prompt\n"
        "s = PromptSuite.objects.create(name='embedded')\n"
        "for i, t in enumerate(['a red cube', 'a blue sphere', 'a sign that says \"OPEN\"']):\n"
        "    Prompt.objects.create(suite=s, position=i + 1, text=t)\n"
    ))
    built = _manage(env, "build_demo_models", "--tiny").stdout
    assert "tiny-sd3" in built and " built " not in built  # complete directories are reused: idempotent
    return env, data


def _embedded_rows(data: Path, sweep_id: int) -> list[dict]:
    db = sqlite3.connect(data / "db.sqlite3", timeout=30)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM generation_generation WHERE sweep_id = ?", (sweep_id,))]
    db.close()
    for row in rows:
        row["settings_snapshot"] = json.loads(row["settings_snapshot"])
    return rows


@pytest.mark.slow
def test_embedded_sqlite_and_filesystem_broker_render_through_a_worker_process(embedded, tmp_path):
    """What `make demo` does: no PostgreSQL, no Redis; the CLI and the worker are separate processes."""
    env, data = embedded
    bad = subprocess.run([sys.executable, "manage.py", "run_sweep", "--suite", "embedded", "--models", "tiny-sd3,nope"],
                         cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "unknown model slug(s) nope" in bad.stderr
    worker = _start_worker(env=env, log=tmp_path / "worker.log")
    try:
        result = _manage(env, "run_sweep", "--suite", "embedded", "--models", "tiny-zimage,tiny-flux",
                         "--seeds", "2", "--width", "48", "--height", "48", "--wait", "--timeout", "240")
    finally:
        _stop(worker)
    sweep_id = int(result.stdout.strip().splitlines()[-1])
    rows = _embedded_rows(data, sweep_id)
    assert len(rows) == 2 * 3 * 2
    _check_images(rows, data / "media", width=48, height=48)  # the canvas chosen explicitly
    db = sqlite3.connect(data / "db.sqlite3")
    assert db.execute("SELECT status FROM generation_sweep WHERE id = ?", (sweep_id,)).fetchone()[0] == "done"


@pytest.mark.slow
def test_the_profile_button_s_task_reaches_a_real_worker_on_the_gpu_queue(embedded, tmp_path):
    """A VRAM profile asked for (as the model page's button does) is run by a worker consuming only `gpu`; on this
    CPU worker it ends failed with NoGPU's message, and the worker lives on (issue 14)."""
    env, data = embedded
    env = {**env, "EVALSITE_GPU_MEMORY_GIB": "6"}
    _manage(env, "shell", "-c", (
        "from generation.models import ImageModel\n"
        "from generation.services import vram_profile_request\n"
        "vram_profile_request(image_model=ImageModel.objects.get(slug='tiny-flux'), cards=[4, 8])\n"))
    log = tmp_path / "worker.log"
    worker = _start_worker(env=env, log=log)

    def finished():
        db = sqlite3.connect(data / "db.sqlite3", timeout=30)
        row = db.execute("SELECT status, error, worker FROM generation_vramprofile").fetchone()
        db.close()
        return row if row and row[0] in ("done", "failed") else None

    try:
        status, error, by = _wait_for(finished, timeout=240, what="the worker to run the profile", log=log)
        assert worker.poll() is None  # the worker is still consuming
    finally:
        _stop(worker)
    assert (status, error) == ("failed", "profile_vram needs a CUDA GPU: this machine has none, so there is no VRAM "
                                         "to profile")
    assert by.split(":")[-1] == str(worker.pid)  # the worker process ran it (hostname:pid)


@pytest.mark.slow
def test_embedded_broker_recovers_a_sigkilled_worker(embedded, tmp_path):
    """The filesystem broker deletes a message when it is delivered, so a killed worker's chunk
    exists only in the database: reconcile alone must bring it back."""
    env, data = embedded
    env = {**env, "EVALSITE_RENDER_CHUNK_SIZE": "3"}  # one chunk per model: 3 prompts × 3 seeds
    result = _manage(env, "run_sweep", "--suite", "embedded", "--models", "tiny-sd3,tiny-zimage", "--seeds", "3",
                     "--width", "64", "--height", "64")
    sweep_id = int(result.stdout.strip().splitlines()[-1])
    log = tmp_path / "worker.log"

    def counts():
        rows = _embedded_rows(data, sweep_id)
        return {s: sum(r["status"] == s for r in rows) for s in ("pending", "running", "done", "failed")}

    first = _start_worker(env=env, log=log)
    try:
        _wait_for(lambda: counts()["done"] >= 2 and counts()["running"] >= 3, timeout=240,
                  what="the first chunk to be half rendered", log=log)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        before = counts()
        assert before["running"] > 0 and 0 < before["done"] < 18, before
        second = _start_worker(env=env, log=log)
        try:
            _wait_for(lambda: counts()["done"] == 18, timeout=240, what="the sweep to finish after the kill", log=log)
        finally:
            _stop(second)
    finally:
        _stop(first, signal.SIGKILL)
    rows = _embedded_rows(data, sweep_id)
    _check_images(rows, data / "media", width=64, height=64)
    assert max(r["attempts"] for r in rows) == 2 and len({r["worker"] for r in rows}) == 2


# --------------------------------------------------------------------------- liveness, on both brokers

WATCHDOG = "watchdog: the pipeline call of stall did not finish within 4 s (EVALSITE_RENDER_WATCHDOG_SECONDS=4)"
HANG_PROMPTS = ["a red cube", f"{HANG} a frozen clock", "a blue sphere", "a green cone"]


def _check_hang(rows: list[dict], media_root: Path, log: Path, worker: subprocess.Popen) -> None:
    """The hung image failed with the watchdog's message; the recycled process (same pid: execv)
    rendered the three others, once each."""
    hung = [row for row in rows if row["status"] == "failed"]
    assert len(hung) == 1 and hung[0]["error"].startswith(WATCHDOG), [r["error"] for r in rows]
    assert hung[0]["attempts"] == 1
    _check_images(rows, media_root, width=64, height=64, failed=1)
    assert worker.poll() is None  # the same process, replaced in place, still serving
    text = log.read_text()
    assert text.count(WATCHDOG) == 1 and text.count(" ready.") == 2, text[-4000:]


def _check_exit_before_claim(worker: subprocess.Popen, log: Path) -> None:
    assert worker.wait(timeout=240) == 3, log.read_text()[-4000:]
    assert "EVALSITE_TEST_EXIT_BEFORE_CLAIM: exiting before claiming" in log.read_text()


@pytest.mark.services
@pytest.mark.slow
def test_hung_pipeline_fails_by_watchdog_and_the_recycled_worker_renders_the_rest(workers, settings):
    stall = image_model_register_demo(demo=MODEL, path=build_stall_pipeline(Path(settings.MODEL_DIR) / "stall"))
    suite = PromptSuiteFactory(name="hang")
    for position, text in enumerate(HANG_PROMPTS, start=1):
        PromptFactory(suite=suite, position=position, text=text)
    worker = workers(EVALSITE_RENDER_WATCHDOG_SECONDS="4")
    # one chunk; its second image hangs
    sweep = sweep_create(suite=suite, image_models=[stall], seeds=1, canvas_width=64, canvas_height=64)
    gens = Generation.objects.filter(sweep=sweep)
    _wait_for(lambda: not gens.filter(status__in=("pending", "running")).exists(), timeout=300,
              what="the hung image to fail and the rest to render", log=workers.log)
    _check_hang(_rows(sweep), Path(settings.MEDIA_ROOT), workers.log, worker)
    assert _sweep_finished(sweep, log=workers.log) == SweepStatus.FAILED  # finished, with one failed image


@pytest.mark.services
@pytest.mark.slow
def test_worker_killed_between_receiving_and_claiming_loses_nothing(suite, tiny_models, workers, settings):
    import redis

    settings.RENDER_CHUNK_SIZE = 4  # one chunk per model
    first = workers(EVALSITE_TEST_EXIT_BEFORE_CLAIM="1")
    sweep = sweep_create(suite=suite, image_models=[tiny_models["tiny-sd3"], tiny_models["tiny-zimage"]], seeds=1,
                         canvas_width=64, canvas_height=64)
    _check_exit_before_claim(first, workers.log)
    gens = Generation.objects.filter(sweep=sweep)
    assert set(gens.values_list("status", "attempts")) == {("pending", 0)}
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert broker.hlen("unacked") == 1  # the received chunk waits there for the visibility timeout (hours)
    workers()
    _wait_for(lambda: not gens.exclude(status=GenerationStatus.DONE).exists(), timeout=300,
              what="the lost chunk to be re-sent and rendered", log=workers.log)
    rows = _rows(sweep)
    _check_images(rows, Path(settings.MEDIA_ROOT), width=64, height=64)
    assert {row["attempts"] for row in rows} == {1} and len({row["worker"] for row in rows}) == 1
    assert "never claimed re-enqueued" in workers.log.read_text()


def _embedded_shell(env, code: str) -> str:
    return _manage(env, "shell", "-c", code).stdout


@pytest.mark.slow
def test_embedded_broker_hung_pipeline_fails_by_watchdog_and_the_worker_renders_the_rest(embedded, tmp_path, tiny_dir):
    env, data = embedded
    env = {**env, "EVALSITE_RENDER_WATCHDOG_SECONDS": "4"}
    stall = build_stall_pipeline(tiny_dir / "stall")  # inside EVALSITE_MODEL_DIR, as the model roots ask
    log = tmp_path / "worker.log"
    worker = _start_worker(env=env, log=log)
    try:
        sweep_id = int(_embedded_shell(env, (
            "from generation.services import image_model_register_demo, sweep_create\n"
            "from prompts.models import PromptSuite, Prompt\n"
            "from tests.generation.stall import MODEL\n"
            f"m = image_model_register_demo(demo=MODEL, path={str(stall)!r})\n"
            "s = PromptSuite.objects.create(name='hang')\n"
            f"for i, t in enumerate({HANG_PROMPTS!r}):\n"
            "    Prompt.objects.create(suite=s, position=i + 1, text=t)\n"
            "print(sweep_create(suite=s, image_models=[m], seeds=1, canvas_width=64, canvas_height=64).pk)\n"
        )).strip().splitlines()[-1])
        _wait_for(lambda: {r["status"] for r in _embedded_rows(data, sweep_id)} <= {"done", "failed"}, timeout=300,
                  what="the hung image to fail and the rest to render", log=log)
        _check_hang(_embedded_rows(data, sweep_id), data / "media", log, worker)
    finally:
        _stop(worker)


@pytest.mark.slow
def test_embedded_broker_worker_killed_between_receiving_and_claiming_loses_nothing(embedded, tmp_path):
    """The filesystem broker deletes a message when it is delivered: the chunk exists only in the database."""
    env, data = embedded
    env = {**env, "EVALSITE_RENDER_CHUNK_SIZE": "3"}  # one chunk per model
    log = tmp_path / "worker.log"
    first = _start_worker(env={**env, "EVALSITE_TEST_EXIT_BEFORE_CLAIM": "1"}, log=log)
    try:
        result = _manage(env, "run_sweep", "--suite", "embedded", "--models", "tiny-sd3,tiny-zimage", "--seeds", "1",
                         "--width", "64", "--height", "64")
        sweep_id = int(result.stdout.strip().splitlines()[-1])
        _check_exit_before_claim(first, log)
        assert {(r["status"], r["attempts"]) for r in _embedded_rows(data, sweep_id)} == {("pending", 0)}
        second = _start_worker(env=env, log=log)
        try:
            _wait_for(lambda: {r["status"] for r in _embedded_rows(data, sweep_id)} == {"done"}, timeout=300,
                      what="the lost chunk to be re-sent and rendered", log=log)
        finally:
            _stop(second)
    finally:
        _stop(first, signal.SIGKILL)
    rows = _embedded_rows(data, sweep_id)
    assert len(rows) == 6
    _check_images(rows, data / "media", width=64, height=64)
    assert {r["attempts"] for r in rows} == {1} and len({r["worker"] for r in rows}) == 1
    assert "never claimed re-enqueued" in log.read_text()
