"""The deployment files stay valid: docker compose config, the Dockerfile, the worker command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose_config() -> dict:
    cmd = _compose_cmd()
    if cmd is None:
        if os.environ.get("EVALSITE_REQUIRE_SERVICES") == "1":
            pytest.fail("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
        pytest.skip("docker compose is not installed")
    env = {**os.environ, "DJANGO_SECRET_KEY": "x", "HF_TOKEN": "hf_test"}
    for profile_args in ([], ["--profile", "gpu2"]):
        subprocess.run([*cmd, *profile_args, "config", "-q"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([*cmd, "--profile", "gpu2", "config"], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return yaml.safe_load(out)


def test_compose_has_the_services(compose_config):
    services = compose_config["services"]
    assert {"postgres", "redis", "web", "worker", "worker-gpu", "worker-gpu1"} <= set(services)
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://")
    assert services["web"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")
    assert "migrate" in " ".join(services["web"]["command"])


def test_each_gpu_worker_is_one_solo_process_on_its_own_gpu(compose_config):
    services = compose_config["services"]
    gpus = []
    for name in ("worker-gpu", "worker-gpu1"):
        svc = services[name]
        command = svc["command"]
        assert "--pool=solo" in command and command[command.index("-c") + 1] == "1"
        assert command[command.index("-Q") + 1] == "gpu"  # snapshots and exports never wait behind a render
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]
        gpus.extend(device["device_ids"])
        assert svc["environment"]["HF_TOKEN"] == "hf_test"
        assert ":/models" in str(svc["volumes"]) or "'target': '/models'" in str(svc["volumes"])
    assert sorted(gpus) == ["0", "1"]




def test_a_results_worker_takes_the_default_queue_on_the_web_image(compose_config):
    """Leaderboard snapshots and background exports run on the `default` queue: a worker on the web image (no
    GPU) takes it, so a board is refreshed while the GPU workers render, and on a host without any GPU."""
    services = compose_config["services"]
    svc = services["worker"]
    command = svc["command"]
    assert command[:3] == ["celery", "-A", "evalsite"] and command[command.index("-Q") + 1] == "default"
    assert "--pool=solo" not in command and svc["build"]["dockerfile"] == "Dockerfile"
    assert "deploy" not in svc  # no GPU reserved
    assert svc["environment"] == services["web"]["environment"]  # the same database, broker, cache and media
    assert "/data" in str(svc["volumes"])
    node = command[command.index("-n") + 1].split("@")[0]
    test = " ".join(svc["healthcheck"]["test"])  # not the web image's curl of port 8000
    assert "curl" not in test and (f"-d {node}@$$HOSTNAME" in test or f"-d {node}@$HOSTNAME" in test)
    assert svc["depends_on"]["web"]["condition"] == "service_healthy"  # web migrates first
    # every queue the app routes to has a consumer
    from evalsite.celery import app

    routed = {route["queue"] for route in app.conf.task_routes.values()} | {app.conf.task_default_queue}
    consumed = set()
    for service in services.values():
        cmd = service.get("command") or []
        if isinstance(cmd, list) and "worker" in cmd and "-Q" in cmd:
            consumed |= set(cmd[cmd.index("-Q") + 1].split(","))
    assert routed <= consumed, routed - consumed


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in __import__("re").findall(r"(\d+)([smh])", duration))


def test_web_and_worker_images(compose_config):
    services = compose_config["services"]
    assert services["web"]["build"]["dockerfile"] == "Dockerfile"
    for name in ("worker-gpu", "worker-gpu1"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "Dockerfile.worker"
        node = svc["command"][svc["command"].index("-n") + 1].split("@")[0]
        test = " ".join(svc["healthcheck"]["test"])
        # compose's `config` prints $$ (its escape for a literal $): the container's shell expands $HOSTNAME
        assert "celery -A evalsite inspect ping" in test and (f"-d {node}@$$HOSTNAME" in test or f"-d {node}@$HOSTNAME" in test)
        # a solo-pool worker answers no ping while it renders: unhealthy only after 30 silent minutes
        assert _seconds(svc["healthcheck"]["interval"]) * svc["healthcheck"]["retries"] >= 1800
        # longer than the slowest image (HunyuanImage-3.0 4-bit takes minutes on one card)
        assert _seconds(svc["stop_grace_period"]) >= 300
    assert services["web"]["environment"]["DJANGO_SECURE"] == "1"
