"""Worker liveness: heartbeats that follow progress, the per-image watchdog, process recycling.

The engine reports progress from its thread (an image's pipeline call started, a denoising
step, an image finished; see ``generation.engine.engine.Progress``) into this process's
``Liveness``. The ``WorkerMonitor`` thread turns that into heartbeats: the chunk's images are
refreshed only when something progressed since the last beat. A model load counts as progress
until ``RENDER_LOAD_WATCHDOG_SECONDS``; the image on the engine's thread stays alive until its
watchdog limit (a pipeline without a step callback reports nothing in between), while the
chunk's waiting images go stale, so another worker can take them (``sweep_reconcile``).

When the image (or the load) runs past its limit the watchdog fails it with a message that
says so, sends the chunk's other images back to the queue and replaces the worker process
with a fresh one (``os.execv`` of the same command line, same pid): a hung CUDA call cannot
keep the GPU, and the new process renders the rest.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from generation.models import Generation, GenerationStatus, ImageModel, Sweep, VramProfile, VramProfileStatus
from generation.recycle import process_recycle

from .sweeps import sweep_enqueue, sweep_status_refresh, sweeps_reconcile
from .workers import worker_report_if_due

logger = logging.getLogger(__name__)

MEASURED_IMAGES = 50  # the model's latest images that its measured seconds per image come from


def watchdog_limit(*, seconds: Sequence[float], slug: str) -> tuple[float, str]:
    """The per-image limit and how it was set (for the error message).

    RENDER_WATCHDOG_SECONDS when set; else FACTOR × the median measured seconds per image, at
    least FLOOR; before any measurement FACTOR × FLOOR."""
    fixed = settings.RENDER_WATCHDOG_SECONDS
    if fixed > 0:
        return fixed, f"EVALSITE_RENDER_WATCHDOG_SECONDS={fixed:g}"
    factor, floor = settings.RENDER_WATCHDOG_FACTOR, settings.RENDER_WATCHDOG_FLOOR_SECONDS
    if not seconds:
        return factor * floor, f"{factor:g} × the {floor:g} s floor: {slug} has no measured image yet"
    median = statistics.median(seconds)
    if factor * median <= floor:
        return floor, f"the floor; {factor:g} × {median:.2f} s/image measured for {slug} is less"
    return factor * median, f"{factor:g} × {median:.2f} s/image measured for {slug}"


def model_seconds_measured(*, model: ImageModel) -> list[float]:
    """Seconds per image of the model's latest rendered images (pipeline call only)."""
    rows = (Generation.objects.filter(model=model, status=GenerationStatus.DONE, seconds__isnull=False)
            .order_by("-finished_at").values_list("seconds", flat=True)[:MEASURED_IMAGES])
    return [s for s in rows if s is not None]  # filtered above; the column is nullable


@dataclass(frozen=True)
class Overdue:
    """What the watchdog found: an image (or a model load) past its limit."""

    what: str  # "image" | "load"
    generation_id: int | None
    elapsed: float
    limit: float
    why: str

    def message(self, *, slug: str) -> str:
        if self.what == "load":
            return (f"watchdog: model {slug} did not load within {self.limit:.0f} s "
                    f"(EVALSITE_RENDER_LOAD_WATCHDOG_SECONDS); the worker process was restarted")
        return (f"watchdog: the pipeline call of {slug} did not finish within {self.limit:.0f} s ({self.why}); "
                f"it looked hung, so the image failed and the worker process was restarted")


class Liveness:
    """What this worker process is doing, as the engine reports it. Thread-safe; no database."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self.sweep_id: int | None = None
        self.slug = ""
        self.generation_ids: list[int] = []
        self.phase = ""  # "" idle | "loading" | "rendering"
        self._phase_since = clock()
        self._current: int | None = None  # the image on the engine's thread
        self._current_since = 0.0
        self._last_progress = 0.0
        self._seconds: list[float] = []
        self.limit, self.why = 0.0, ""
        self.idle_since: datetime | None = None  # since when this worker has waited for a chunk (once ready)

    def chunk_start(self, *, sweep_id: int, slug: str, generation_ids: Sequence[int], seconds: Sequence[float]) -> None:
        """A chunk was claimed: until its first image starts, the worker is loading the model."""
        with self._lock:
            now = self._clock()
            self.sweep_id, self.slug, self.generation_ids = sweep_id, slug, list(generation_ids)
            self.phase, self._phase_since, self._last_progress = "loading", now, now
            self._current = None
            self._seconds = list(seconds)
            self.limit, self.why = watchdog_limit(seconds=self._seconds, slug=slug)
            self.idle_since = None

    def ready(self) -> None:
        """The worker consumes from now on: an idle worker from here proves the queue empty (see sweeps)."""
        with self._lock:
            if not self.phase and self.idle_since is None:
                self.idle_since = timezone.now()

    def chunk_received(self) -> None:
        with self._lock:
            self.idle_since = None

    def chunk_end(self) -> None:
        with self._lock:
            self.phase, self._current, self.generation_ids = "", None, []
            self.idle_since = timezone.now()

    def progress(self, key: str, step: int | None) -> None:
        """The engine's progress callback (see generation.engine.engine.Progress)."""
        with self._lock:
            now = self._clock()
            self._last_progress = now
            if step == 0:
                self.phase, self._current, self._current_since = "rendering", int(key), now
            elif step is None and self._current == int(key):
                self._current = None

    def image_measured(self, *, seconds: float | None) -> None:
        """A finished image's seconds join the model's measurements (the limit follows them)."""
        if seconds is None:
            return
        with self._lock:
            self._seconds.append(seconds)
            self.limit, self.why = watchdog_limit(seconds=self._seconds, slug=self.slug)

    def due(self, *, since: float) -> tuple[list[int], Overdue | None]:
        """The images to heartbeat now (progress since ``since``), and what is overdue, if anything."""
        with self._lock:
            now = self._clock()
            if self.phase == "loading":
                elapsed, limit = now - self._phase_since, settings.RENDER_LOAD_WATCHDOG_SECONDS
                if elapsed > limit:
                    return [], Overdue("load", None, elapsed, limit, "")
                return list(self.generation_ids), None
            if self.phase != "rendering":
                return [], None
            if self._current is not None and now - self._current_since > self.limit:
                return [], Overdue("image", self._current, now - self._current_since, self.limit, self.why)
            if self._last_progress > since:
                return list(self.generation_ids), None
            return ([self._current] if self._current is not None else []), None

    def clock(self) -> float:
        return self._clock()


worker_liveness = Liveness()  # this worker process's


def generations_heartbeat(*, generation_ids: Sequence[int], worker: str, now: datetime | None = None) -> int:
    """Refresh the heartbeat of these images, where this worker still holds them."""
    if not generation_ids:
        return 0
    return Generation.objects.filter(pk__in=list(generation_ids), status=GenerationStatus.RUNNING,
                                     worker=worker).update(heartbeat_at=now or timezone.now())


def watchdog_fire(*, overdue: Overdue, state: Liveness, worker: str) -> None:
    """Fail the overdue image (a hung load fails the chunk), send the chunk's other images back."""
    error = overdue.message(slug=state.slug)
    logger.error("%s (image %s, %.0f s)", error, overdue.generation_id, overdue.elapsed)
    held = Generation.objects.filter(pk__in=state.generation_ids, status=GenerationStatus.RUNNING, worker=worker)
    if overdue.what == "load":
        failing = held
    else:  # an image overdue names its image
        failing = held.filter(pk=overdue.generation_id) if overdue.generation_id is not None else held.none()
    failing.update(status=GenerationStatus.FAILED, error=error[:4000], finished_at=timezone.now(), heartbeat_at=None)
    released = list(held.values_list("pk", flat=True))
    if released:
        held.update(status=GenerationStatus.PENDING, worker="", heartbeat_at=None, started_at=None)
    sweep = Sweep.objects.filter(pk=state.sweep_id).first() if state.sweep_id is not None else None
    if sweep is not None:
        if released:
            sweep_enqueue(sweep=sweep, generation_ids=released)
        sweep_status_refresh(sweep=sweep)


def vram_profiles_reconcile(*, now: datetime | None = None) -> int:
    """Fail the running profiles whose process stopped heartbeating for RENDER_STALE_SECONDS (a worker
    killed, out of host memory, or lost): otherwise they would say "running" for ever, and a redelivered
    task finds them taken. Not re-queued: a profile that killed its worker would kill the next one.
    Returns how many were failed (GPU workers call this from their monitor)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RENDER_STALE_SECONDS)
    lost = list(VramProfile.objects.filter(status=VramProfileStatus.RUNNING, heartbeat_at__lt=cutoff)
                .values_list("pk", "worker", "heartbeat_at"))
    failed = 0
    for pk, worker, beat in lost:
        error = (f"Its worker {worker or '(unknown)'} stopped during the profile: no heartbeat since "
                 f"{beat:%Y-%m-%d %H:%M:%S} UTC (killed, out of host memory, or lost). Ask for it again; if it "
                 "stops again, profile fewer cards or settings at a time.")
        failed += VramProfile.objects.filter(pk=pk, status=VramProfileStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=VramProfileStatus.FAILED, error=error, finished_at=now)
        logger.warning("VRAM profile %s failed: %s", pk, error)
    return failed


class WorkerMonitor(threading.Thread):
    """A worker's background thread: heartbeat on progress, watchdog, and reconcile from time to time.

    Runs beside the solo pool's render loop (torch releases the GIL while it computes)."""

    def __init__(self, *, worker: str, interval: float | None = None, reconcile_every: float | None = None,
                 state: Liveness | None = None, recycle: Callable[[], None] = process_recycle):
        super().__init__(name="evalsite-worker-monitor", daemon=True)
        self.worker = worker
        self.interval = interval if interval is not None else settings.RENDER_HEARTBEAT_SECONDS
        self.reconcile_every = (
            reconcile_every if reconcile_every is not None else max(self.interval, settings.RENDER_STALE_SECONDS / 4)
        )
        self.state = state or worker_liveness
        self.recycle = recycle
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            self._loop()
        finally:
            if threading.current_thread() is self:  # started as a thread: its own connections end with it
                connections.close_all()

    def _loop(self) -> None:
        self.state.ready()
        last_beat = self.state.clock()
        last_reconcile: float | None = None
        first = True
        while True:
            overdue = None
            try:
                tick = self.state.clock()
                beat, overdue = self.state.due(since=last_beat)
                last_beat = tick
                if overdue is not None:
                    watchdog_fire(overdue=overdue, state=self.state, worker=self.worker)
                else:
                    generations_heartbeat(generation_ids=beat, worker=self.worker)
                    if last_reconcile is None or tick - last_reconcile >= self.reconcile_every:
                        sweeps_reconcile(idle_since=self.state.idle_since)
                        vram_profiles_reconcile()
                        last_reconcile = tick
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the monitor
                logger.exception("worker monitor: heartbeat/watchdog/reconcile failed")
            if overdue is None:
                try:  # which models this worker can load: at start, and when staff ask (issue 15)
                    worker_report_if_due(worker=self.worker, starting=first)
                except Exception:  # noqa: BLE001 - a failed check must not stop the heartbeat
                    logger.exception("worker monitor: capability report failed")
            close_old_connections()
            first = False
            if overdue is not None:
                self.recycle()
                return
            if self.stopped.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopped.set()
