"""Production smoke test: what the web image runs, without Docker (issue 13).

1. The repository is copied as the Dockerfile's ``COPY . .`` does and the Dockerfile's own static-build
   ``RUN`` line runs in the copy (scripts/build_static.sh today), with the Dockerfile's ``ENV``.
2. The ``web`` service's command and environment are read from docker-compose.yml; only the hosts change
   (this test's PostgreSQL database, Redis, a local port). GPU-worker packages (torch, diffusers, ...) are
   made unimportable, as they are absent from the web image.
3. Chromium crawls every page type as anonymous, staff and panelist: no response >= 500 and every linked
   stylesheet, script and image answers 200.
4. The ``worker`` service (the results worker, same image) runs its compose command the same way: it answers
   its healthcheck and makes the leaderboard snapshot and a background export of a study.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.urls import Resolver404, resolve

from ratings.results.services import ratings_simulate
from ratings.results.snapshots import board_snapshot_refresh
from ratings.services import panelist_consent, panelist_create, study_create, study_open
from tests.compose_env import ROOT, compose_file, compose_service_env, dockerfile_env
from tests.factories import make_sweep

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.slow]

# Import names of the packages that only requirements-worker.txt adds (the web image lacks them).
WORKER_IMPORT_NAMES = {
    "torch": "torch", "diffusers": "diffusers", "transformers": "transformers", "accelerate": "accelerate",
    "safetensors": "safetensors", "tokenizers": "tokenizers", "huggingface_hub": "huggingface_hub",
    "sentencepiece": "sentencepiece", "protobuf": "google.protobuf", "bitsandbytes": "bitsandbytes",
    "pytesseract": "pytesseract", "torchao": "torchao", "einops": "einops",
}
ASSETS_JS = """els => els.map(e => e.tagName === 'LINK' ? e.href : e.src).filter(Boolean)"""
ASSET_SELECTOR = "link[rel~='stylesheet'][href], link[rel~='icon'][href], script[src], img[src]"
SKIP_ADMIN = ("logout", "delete", "history", "password", "autocomplete", "jsi18n", "view_on_site")


def worker_only_packages() -> list[str]:
    names = []
    for line in (ROOT / "requirements-worker.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[=<>;\[ ]", line)[0].lower().replace("-", "_"))
    return names


def test_every_worker_package_is_hidden_from_the_smoke_web_process():
    """When a package joins requirements-worker.txt, the smoke test must learn its import name."""
    assert set(worker_only_packages()) <= set(WORKER_IMPORT_NAMES), worker_only_packages()


def _copy_build_context(dest: Path) -> None:
    """COPY . . : tracked and untracked files that git does not ignore (.dockerignore excludes the rest)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def dockerfile_static_build_lines() -> list[str]:
    """The Dockerfile's RUN lines after the source COPY that build static files."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = text.splitlines()
    copied = next(i for i, line in enumerate(lines) if line.startswith("COPY") and line.rstrip().endswith(". ."))
    return [line[4:].strip() for line in lines[copied:]
            if line.startswith("RUN ") and ("collectstatic" in line or "build_static" in line)]


def _shims(tmp: Path) -> tuple[Path, Path]:
    """bin/: `python`, `gunicorn` and `celery` of this venv; site/: a sitecustomize that hides the worker packages."""
    bin_dir, site_dir = tmp / "bin", tmp / "site"
    bin_dir.mkdir()
    site_dir.mkdir()
    for name, run in (("python", ""), ("gunicorn", " -m gunicorn"), ("celery", " -m celery")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
        (bin_dir / name).chmod(0o755)
    blocked = sorted(WORKER_IMPORT_NAMES.values())
    (site_dir / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {blocked!r}\n"
        "class HideWorkerPackages:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if any(name == b or name.startswith(b + '.') for b in BLOCKED):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (a GPU-worker package: not in the web image)')\n"
        "        return None\n"
        "sys.meta_path.insert(0, HideWorkerPackages())\n"
    )
    return bin_dir, site_dir


def _stop(proc: subprocess.Popen, *, grace: float) -> None:
    """SIGTERM to the process group (gunicorn's or Celery's warm shutdown), SIGKILL after ``grace`` seconds."""
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    d = connection.settings_dict
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


@dataclass
class Server:
    url: str
    log: Path
    env: dict[str, str]
    static_build_output: str


@pytest.fixture
def production_server(transactional_db, tmp_path):
    app_dir = tmp_path / "app"
    _copy_build_context(app_dir)
    bin_dir, site_dir = _shims(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    base_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(site_dir),
                **dockerfile_env("Dockerfile"), "EVALSITE_DATA_DIR": str(data_dir),
                "MEDIA_ROOT": str(settings.MEDIA_ROOT)}

    (build_line,) = dockerfile_static_build_lines()
    build = subprocess.run(["sh", "-c", build_line], cwd=app_dir, env=base_env, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, f"the Dockerfile's `RUN {build_line}` failed:\n{build.stdout}{build.stderr}"
    unreadable = [str(p) for p in (app_dir / "staticfiles").rglob("*") if not p.stat().st_mode & 0o004]
    assert not unreadable, f"static files another user (the image's runtime user) cannot read: {unreadable[:5]}"

    port = _free_port()
    origin = f"http://localhost:{port}"
    env = {**base_env,
           **compose_service_env("web", {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                                         "DJANGO_CSRF_TRUSTED_ORIGINS": origin,
                                         "EVALSITE_SITE_URL": origin}),
           # the hosts compose names (postgres, redis) are this test's services
           "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CACHE_URL": settings.CELERY_BROKER_URL, "EVALSITE_DATA_DIR": str(data_dir),
           "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    sh, dash_c, command = compose_file()["services"]["web"]["command"]
    assert (sh, dash_c) == ("sh", "-c") and "-b 0.0.0.0:8000" in command
    command = command.replace("-b 0.0.0.0:8000", f"-b 127.0.0.1:{port}")
    log = tmp_path / "web.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", "-c", command], cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline, unhealthy_since, last = time.monotonic() + 120, None, ""
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    assert json.loads(response.read())["ok"] is True
                    break
            except urllib.error.HTTPError as exc:  # 503: up, and /healthz says what failed
                last = exc.read().decode()
                unhealthy_since = unhealthy_since or time.monotonic()
                if time.monotonic() - unhealthy_since > 15:
                    pytest.fail(f"/healthz -> {exc.code} {last}\n--- gunicorn log ---\n{log.read_text()[-3000:]}")
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not become healthy ({last}):\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield Server(url=origin, log=log, env=env, static_build_output=build.stdout)
    finally:
        _stop(proc, grace=30)


def page_type(path: str) -> str | None:
    """One URL per route is enough (per admin view kind and model); None: do not crawl."""
    try:
        match = resolve(path)
    except Resolver404:
        return f"404:{path}"
    name = match.url_name or match.route
    if match.namespace == "admin":
        if any(word in name for word in SKIP_ADMIN):
            return None
        return f"admin:{name}"
    return f"{match.namespace}:{match.route}"


@dataclass
class Crawl:
    role: str
    base: str
    problems: list[str] = field(default_factory=list)
    visited: dict[str, str] = field(default_factory=dict)  # page type -> url
    assets: dict[str, int] = field(default_factory=dict)  # linked stylesheet/script/image -> status

    def run(self, context, seeds: list[str], max_pages: int = 120) -> None:
        statuses: dict[str, int] = {}
        page = context.new_page()
        page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
        queue = deque(seeds)
        while queue and len(self.visited) < max_pages:
            url = urldefrag(queue.popleft())[0]
            if not url.startswith(self.base):
                continue
            kind = page_type(urlsplit(url).path)
            if kind is None or kind in self.visited:
                continue
            self.visited[kind] = url
            head = context.request.get(url, max_redirects=10)
            if head.status >= 500:
                self.problems.append(f"{self.role}: GET {url} -> {head.status}")
                continue
            if head.status != 200 or "text/html" not in head.headers.get("content-type", ""):
                continue  # POST-only (405), refused (403/404), CSV and image downloads: the status is what counts
            landed = page_type(urlsplit(head.url).path)
            if landed != kind:  # redirected (e.g. to the login page): render each landing page once
                if landed is None or landed in self.visited:
                    continue
                self.visited[landed] = head.url
            statuses.clear()
            response = page.goto(url, wait_until="load")
            if response is None or response.status >= 500:
                self.problems.append(f"{self.role}: page {url} -> {response and response.status}")
            for seen, status in list(statuses.items()):
                if status >= 500:
                    self.problems.append(f"{self.role}: {url} loaded {seen} -> {status}")
            for asset in page.eval_on_selector_all(ASSET_SELECTOR, ASSETS_JS):
                if asset.startswith("data:"):
                    continue
                status = statuses.get(asset) or context.request.get(asset).status
                self.assets[asset] = status
                if status != 200:
                    self.problems.append(f"{self.role}: {url} links {asset} -> {status}")
            for link in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                if link.startswith(self.base):
                    queue.append(link)
        page.close()
        print(f"{self.role}: {len(self.visited)} page types: {sorted(self.visited)}")


def _study_with_everything():
    sweep, models, prompts, gens = make_sweep(n_models=3, n_prompts=4, text_prompts=1)
    study = study_create(sweep=sweep, name="Smoke study", mode="both", ratings_per_item=2, gold_enabled=True)
    study_open(study=study)
    ratings_simulate(study=study, panelists=3, seed=1, max_items=12)
    # what the results worker does after those ratings (no worker runs beside this gunicorn)
    board_snapshot_refresh(study=study, reason="ratings")
    panelist = panelist_consent(panelist=panelist_create(study=study))
    newcomer = panelist_create(study=study)  # has not consented yet: sees the consent page
    return study, sweep, panelist, newcomer


def test_the_production_build_serves_every_page(production_server, browser, django_user_model):
    study, sweep, panelist, newcomer = _study_with_everything()
    password = secrets.token_urlsafe(16)
    django_user_model.objects.create_user("smoke-staff", password=password, is_staff=True, is_superuser=True)
    base = production_server.url
    # the TLS proxy in front of the web container sets X-Forwarded-Proto (compose sets DJANGO_SECURE=1)
    headers = {"X-Forwarded-Proto": "https"}

    staff_ctx = browser.new_context(extra_http_headers=headers)
    login = staff_ctx.new_page()
    login.goto(f"{base}/admin/login/?next=/studies/")
    login.fill("#id_username", "smoke-staff")
    login.fill("#id_password", password)
    login.click("input[type=submit], button[type=submit]")
    login.wait_for_url(f"{base}/studies/")
    staff_crawl = Crawl("staff", base)
    staff_crawl.run(staff_ctx, [f"{base}/", f"{base}/studies/", f"{base}/studies/{study.pk}/",
                                f"{base}/studies/{study.pk}/leaderboard/", f"{base}/sweeps/",
                                f"{base}/sweeps/{sweep.pk}/", f"{base}/suites/upload/", f"{base}/admin/"])
    staff_ctx.close()

    panel_ctx = browser.new_context(extra_http_headers=headers)
    panel_crawl = Crawl("panelist", base)
    panel_crawl.run(panel_ctx, [f"{base}/r/{panelist.token}/", f"{base}/r/{panelist.token}/start/",
                                f"{base}/r/{panelist.token}/results/"])
    panel_ctx.close()
    consent_ctx = browser.new_context(extra_http_headers=headers)
    consent_crawl = Crawl("panelist before consent", base)
    consent_crawl.run(consent_ctx, [f"{base}/r/{newcomer.token}/"])
    consent_ctx.close()

    anon_ctx = browser.new_context(extra_http_headers=headers)
    anon_crawl = Crawl("anonymous", base)
    anon_crawl.run(anon_ctx, [f"{base}/", f"{base}/admin/login/", f"{base}/healthz",
                              *staff_crawl.visited.values(), *panel_crawl.visited.values()], max_pages=200)
    anon_ctx.close()

    print(f"static build: {production_server.static_build_output.strip()}")
    crawls = (staff_crawl, panel_crawl, consent_crawl, anon_crawl)
    problems = [problem for crawl in crawls for problem in crawl.problems]
    server_errors = [line for line in production_server.log.read_text().splitlines() if "Traceback" in line
                     or " 500 " in line or "Error" in line]
    assert not problems, "\n".join(problems[:40]) + "\n--- gunicorn log ---\n" + "\n".join(server_errors[-40:])
    # the crawl reached the pages that matter, and checked what they link
    assert {"ratings:studies/<int:pk>/", "results:studies/<int:study_id>/leaderboard/", "generation:sweeps/<int:sweep_id>/",
            "prompts:suites/upload/", "admin:index", "admin:ratings_study_change"} <= set(staff_crawl.visited)
    assert "admin:login" in anon_crawl.visited
    assert "ratings:r/<str:token>/" in panel_crawl.visited and "ratings:r/<str:token>/" in consent_crawl.visited
    panelist_images = [url for url in panel_crawl.assets if f"/r/{panelist.token}/i/" in url]
    assert panelist_images and all(panel_crawl.assets[url] == 200 for url in panelist_images)
    assert any(url.endswith(".css") for url in staff_crawl.assets) and any(".js" in url for url in staff_crawl.assets)
    assert all("/static/" not in url or re.search(r"\.[0-9a-f]{12}\.", url) for crawl in crawls for url in crawl.assets), \
        "static URLs carry the manifest's hashed names"


def test_the_compose_results_worker_makes_snapshots_and_exports(transactional_db, tmp_path, settings):
    """docker-compose's ``worker`` service (the `default` queue, on the web image): its command and environment
    from docker-compose.yml, run from the build context with the GPU-worker packages hidden; only the hosts
    change. Its healthcheck answers; a study's first snapshot and a background export are made by it."""
    from evalsite.celery import app
    from ratings.models import ExportFile, ExportStatus, Rating
    from ratings.results.export_files import export_file_request
    from ratings.results.models import BoardSnapshot, SnapshotReason
    from ratings.results.snapshots import board_snapshot_request

    app_dir = tmp_path / "app"
    _copy_build_context(app_dir)
    bin_dir, site_dir = _shims(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    hostname = socket.gethostname()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(site_dir),
           **dockerfile_env("Dockerfile"),
           **compose_service_env("worker", {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}),
           "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "CACHE_URL": settings.CELERY_BROKER_URL, "EVALSITE_DATA_DIR": str(data_dir),
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "HOSTNAME": hostname}
    service = compose_file()["services"]["worker"]
    command = service["command"]
    assert command[command.index("-Q") + 1] == "default"
    with app.connection_for_write() as conn:  # no task left over from an earlier run (ids are reused)
        conn.default_channel.queue_declare(queue="default", durable=True, auto_delete=False)
        conn.default_channel.queue_purge("default")

    settings.RESULTS_COMPUTE_ON_READ = False  # as deployed: the page asks, the worker computes
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = 1
    sweep, *_ = make_sweep(n_models=3, n_prompts=4)
    study = study_create(sweep=sweep, name="Compose worker study", mode="both", ratings_per_item=2)
    study_open(study=study)
    ratings_simulate(study=study, panelists=3, seed=4, max_items=12)
    n_ratings = Rating.objects.filter(study=study).count()
    assert n_ratings and not BoardSnapshot.objects.filter(study=study).exists()

    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    health = " ".join(service["healthcheck"]["test"][1:]).replace("$$", "$")

    def wait(what: str, check, timeout: float = 90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        pytest.fail(f"{what}: not within {timeout:.0f} s\n--- worker log ---\n{log.read_text()[-4000:]}")

    try:
        wait("the healthcheck", lambda: subprocess.run(["sh", "-c", health], cwd=app_dir, env=env,
                                                        capture_output=True, timeout=60).returncode == 0)
        board_snapshot_request(study_id=study.pk, reason=SnapshotReason.FIRST)  # what the first page view asks
        wait("the snapshot", lambda: BoardSnapshot.objects.filter(study=study).exists())
        snap = BoardSnapshot.objects.get(study=study)
        assert snap.ratings_count == n_ratings and snap.board["n_ratings_total"] == n_ratings

        export = export_file_request(study=study)  # autocommit here: sent at once
        wait("the export", lambda: ExportFile.objects.filter(pk=export.pk, status__in=(
            ExportStatus.DONE, ExportStatus.FAILED)).exists())
        export.refresh_from_db()
        assert export.status == ExportStatus.DONE, export.error
        written = Path(settings.MEDIA_ROOT) / export.file.name
        assert export.rows == n_ratings and written.read_bytes().count(b"\r\n") == n_ratings + 1
    finally:
        _stop(proc, grace=60)
    problems = [line for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line]
    assert not problems, log.read_text()[-4000:]
