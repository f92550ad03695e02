"""Workers say which registered models they can load: at start, and again when staff ask (sweep form).

The check runs on the worker (only it knows its disk, cache and GPU) in its monitor thread, so a
worker busy rendering still answers within one heartbeat period.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from generation.engine.capability import machine_describe, model_loadable
from generation.models import Backend, ImageModel, WorkerReport

logger = logging.getLogger(__name__)


class Capability(TypedDict):
    """One model on one worker, as WorkerReport.capabilities stores it by slug."""

    loadable: bool
    reason: str  # what was found either way


def worker_report_capabilities(*, worker: str, machine=None) -> WorkerReport:
    """Check every enabled, renderable model on this worker and store the answers."""
    if machine is None:
        budget = settings.GPU_VRAM_BUDGET_GB
        machine = machine_describe(vram_budget_bytes=int(budget * 2**30) if budget else None)
    capabilities: dict[str, Capability] = {}
    for model in ImageModel.objects.filter(enabled=True).exclude(backend=Backend.IMPORTED):
        loadable, reason = model_loadable(
            source=model.source, backend=model.backend, machine=machine, revision=model.revision,
            min_vram_gb=model.min_vram_gb,
        )
        capabilities[model.slug] = {"loadable": loadable, "reason": reason}
    report, _ = WorkerReport.objects.update_or_create(
        worker=worker,
        defaults={"reported_at": timezone.now(), "device": machine.device, "gpu_name": machine.gpu_name,
                  "memory_bytes": machine.memory_bytes, "hub_reachable": machine.hub_reachable,
                  "capabilities": capabilities, "requested_at": None},
    )
    logger.info("worker %s can load %d of %d models", worker, sum(c["loadable"] for c in capabilities.values()),
                len(capabilities))
    return report


def worker_reports_request() -> int:
    """Ask every worker for a fresh report (each answers from its monitor thread)."""
    return WorkerReport.objects.update(requested_at=timezone.now())


def worker_report_if_due(*, worker: str, starting: bool = False) -> WorkerReport | None:
    """Report when the worker starts, when staff asked since the last report, or when it never reported."""
    due = starting or not WorkerReport.objects.filter(worker=worker).exists() or WorkerReport.objects.filter(
        Q(worker=worker) & Q(requested_at__isnull=False) & Q(requested_at__gt=F("reported_at"))
    ).exists()
    return worker_report_capabilities(worker=worker) if due else None
