"""Workers report which registered models they can load (at start and when staff ask); the sweep form uses it."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from generation.engine.capability import Machine, model_loadable
from generation.models import Backend, WorkerReport
from generation.selectors import worker_capabilities
from generation.services import WorkerMonitor
from generation.services.workers import worker_report_capabilities, worker_report_if_due, worker_reports_request
from tests.factories import ImageModelFactory

GPU_24 = Machine(device="cuda", gpu_name="RTX 4090", memory_bytes=24 * 2**30, hub_reachable=False)
CPU = Machine(device="cpu", gpu_name="", memory_bytes=64 * 2**30, hub_reachable=False)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local hub cache holding one repo's model_index.json (the layout huggingface_hub reads)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model_index.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_loadable_when_local_or_cached_or_hub_reachable(tmp_path, hub_cache):
    (tmp_path / "local-model").mkdir()
    assert model_loadable(source=str(tmp_path / "local-model"), backend="diffusers", machine=CPU) == (
        True, "local directory")
    ok, why = model_loadable(source=str(tmp_path / "gone"), backend="diffusers", machine=CPU)
    assert not ok and "does not exist on this worker" in why
    assert model_loadable(source="org/cached", backend="diffusers", machine=GPU_24) == (True, "weights cached locally")
    ok, why = model_loadable(source="org/not-cached", backend="diffusers", machine=GPU_24)
    assert not ok and "not cached on this worker and the hub is unreachable" in why
    online = Machine(device="cuda", gpu_name="H200", memory_bytes=141 * 2**30, hub_reachable=True)
    assert model_loadable(source="org/not-cached", backend="diffusers", machine=online)[0] is True


def test_not_loadable_without_enough_memory(hub_cache):
    ok, why = model_loadable(source="org/cached", backend="diffusers", machine=GPU_24, min_vram_gb=48)
    assert not ok and "needs 48 GiB of GPU memory; this worker has 24.0 GiB" in why
    ok, why = model_loadable(source="org/cached", backend="diffusers", machine=CPU, min_vram_gb=16)
    assert not ok and "this worker has no GPU" in why
    assert model_loadable(source="org/cached", backend="diffusers", machine=GPU_24, min_vram_gb=16)[0]


def test_hub_offline_is_unreachable(monkeypatch):
    from generation.engine.capability import hub_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port here
    assert hub_reachable(timeout=0.5) is False


@pytest.mark.django_db
def test_reports_and_requests(tmp_path, hub_cache):
    (tmp_path / "tiny").mkdir()
    tiny = ImageModelFactory(slug="tiny", source=str(tmp_path / "tiny"))
    flux = ImageModelFactory(slug="flux", source="org/not-cached", min_vram_gb=24)
    ImageModelFactory(slug="api", backend=Backend.IMPORTED, source="imported")
    report = worker_report_capabilities(worker="gpu:1", machine=GPU_24)
    assert set(report.capabilities) == {"tiny", "flux"}  # imported models are never rendered
    caps = worker_capabilities(image_models=[tiny, flux])
    assert caps[tiny.pk]["loadable"] is True and caps[tiny.pk]["workers"] == ["gpu:1"]
    assert caps[flux.pk]["loadable"] is False and "hub is unreachable" in caps[flux.pk]["reasons"][0]
    assert worker_report_if_due(worker="gpu:1", starting=False) is None  # nothing asked
    worker_reports_request()
    again = worker_report_if_due(worker="gpu:1", starting=False)
    assert again is not None and again.requested_at is None and again.reported_at > report.reported_at
    WorkerReport.objects.filter(worker="gpu:1").update(reported_at=timezone.now() - timezone.timedelta(days=2))
    assert worker_capabilities(image_models=[tiny])[tiny.pk]["loadable"] is None  # stale reports say nothing


@pytest.mark.django_db(transaction=True)
def test_the_worker_monitor_reports_at_start_and_on_request(tmp_path, hub_cache, settings):
    (tmp_path / "tiny").mkdir()
    ImageModelFactory(slug="tiny", source=str(tmp_path / "tiny"))
    monitor = WorkerMonitor(worker="host:123", interval=0.2, reconcile_every=60)
    monitor.start()
    try:
        deadline = time.monotonic() + 30
        while not WorkerReport.objects.filter(worker="host:123").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        first = WorkerReport.objects.get(worker="host:123")
        assert first.capabilities["tiny"]["loadable"] is True
        ImageModelFactory(slug="later", source=str(tmp_path / "missing"))
        worker_reports_request()
        while time.monotonic() < deadline:
            report = WorkerReport.objects.get(worker="host:123")
            if "later" in report.capabilities:
                break
            time.sleep(0.1)
        assert report.capabilities["later"] == {"loadable": False, "reason": report.capabilities["later"]["reason"]}
        assert "does not exist" in report.capabilities["later"]["reason"]
    finally:
        monitor.stop()
        monitor.join(timeout=10)
