"""Celery tasks: thin, id-only, idempotent (late acks may run a chunk twice).

Run GPU workers as ``celery -A evalsite worker -Q gpu --pool=solo -c 1``, one per GPU
(``CUDA_VISIBLE_DEVICES``). The solo pool renders in the worker's main process, which
never forks, and the Engine (CUDA) is created on the first chunk.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down

from generation import services

logger = logging.getLogger(__name__)
_monitor: services.WorkerMonitor | None = None


@shared_task(name="generation.tasks.render_chunk", acks_late=True, reject_on_worker_lost=True)
def render_chunk(*, sweep_id: int, model_id: int, generation_ids: list[int]) -> dict:
    result = services.generation_chunk_render(sweep_id=sweep_id, model_id=model_id, generation_ids=generation_ids)
    return {"claimed": result.claimed, "done": result.done, "failed": result.failed, "skipped": result.skipped}


@shared_task(name="generation.tasks.vram_profile", acks_late=True, reject_on_worker_lost=True)
def vram_profile(*, profile_id: int) -> dict:
    """Profile a model's card classes on this GPU worker (only a queued profile runs: a redelivery does nothing)."""
    profile = services.vram_profile_run(profile_id=profile_id)
    return {"status": profile.status if profile else "missing"}


def renders(consumer) -> bool:
    """Whether this worker takes the ``gpu`` queue (renders, profiles). A results worker (``-Q default``, the
    web image: no torch, no GPU) does not; when the queues can't be read, assume it does."""
    try:
        queues = consumer.app.amqp.queues.consume_from
    except AttributeError:
        return True
    return not queues or "gpu" in queues


@worker_ready.connect
def _start_monitor(sender=None, **_kwargs) -> None:
    """Heartbeat on progress, the watchdog, reconcile of lost images and chunks, the GPU capability report
    (services.liveness): in a worker that renders only."""
    global _monitor
    if sender is not None and not renders(sender):
        logger.info("worker monitor not started: this worker does not take the gpu queue")
        return
    if _monitor is None:
        _monitor = services.WorkerMonitor(worker=services.worker_name())
        _monitor.start()
        logger.info("worker monitor started for %s", _monitor.worker)


@worker_shutting_down.connect
def _stop_monitor(**_kwargs) -> None:
    if _monitor is not None:
        _monitor.stop()
