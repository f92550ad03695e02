"""`make demo`: everything a new user needs to see evalsite working, with no services.

Migrates the embedded database, registers the reference and the tiny offline demo
models, imports the sample suite, renders it through a real Celery worker process on
the embedded broker, opens a study with singles and pairs, prints a staff login and a
panelist invite link, then serves the site with the worker until Ctrl-C. Re-running
reuses everything that exists.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError, call_command
from django.db import transaction

from generation.engine.demo_draw import DEMO_MODELS
from generation.models import ImageModel, Sweep
from generation.selectors import sweep_totals
from generation.services import sweep_create, sweep_reconcile
from prompts.models import PromptSuite
from ratings.models import Study
from ratings.services import panelist_create, study_create, study_open

DEMO_SUITE = "sample"
DEMO_STUDY = "Demo study"
SAMPLE_FILE = Path(settings.BASE_DIR) / "samples" / "sample_suite.csv"


class Command(BaseCommand):
    help = "Set up and serve the offline demo (web + worker) on the embedded defaults."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Prepare and render, print the links, exit.")
        parser.add_argument("--panel", action="store_true", help="Add simulated ratings to the demo study and exit.")
        parser.add_argument("--panelists", type=int, default=6)
        parser.add_argument("--seeds", type=int, default=1)

    def handle(self, *args, addr: str, no_serve: bool, panel: bool, panelists: int, seeds: int, **options):
        if panel:
            study = Study.objects.filter(name=DEMO_STUDY).order_by("-id").first()
            if study is None:
                raise CommandError("No demo study yet: run `make demo` first.")
            call_command("simulate_panel", study=study.pk, panelists=panelists, seed=0)
            self.stdout.write(f"Simulated ratings added to study {study.pk}: {settings.SITE_URL}/studies/{study.pk}/leaderboard/")
            return

        self._step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        self._step("Registering models")
        call_command("seed_models", verbosity=0)
        call_command("build_demo_models")
        self._step("Importing the sample suite")
        if not PromptSuite.objects.filter(name=DEMO_SUITE).exists():
            call_command("import_prompts", str(SAMPLE_FILE), suite=DEMO_SUITE)

        if "EVALSITE_SITE_URL" not in os.environ:
            # Links printed here and made by the staff pages point at the address served.
            settings.SITE_URL = f"http://{addr}"
            os.environ["EVALSITE_SITE_URL"] = settings.SITE_URL
        self.log_dir = Path(settings.DATA_DIR) / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        worker = self._start_worker()
        server = None
        try:
            sweep = self._demo_sweep(seeds=seeds)
            self._wait_for(sweep)
            study = self._demo_study(sweep=Sweep.objects.get(pk=sweep.pk))
            username, password = self._staff_account()
            invite = self._invite(study)
            self._step("Ready")
            self.stdout.write(
                f"\n  Site:            {settings.SITE_URL}/\n"
                f"  Staff login:     {settings.SITE_URL}/admin/login/?next=/studies/{study.pk}/"
                f"  user {username}  password {password}\n"
                f"  Study dashboard: {settings.SITE_URL}/studies/{study.pk}/\n"
                f"  Leaderboard:     {settings.SITE_URL}/studies/{study.pk}/leaderboard/\n"
                f"  Panelist invite: {invite}\n"
                f"  (make demo-panel adds simulated ratings so the leaderboard has content)\n"
            )
            if no_serve:
                return
            server = self._start_server(addr)
            _wait_until_serving(server, addr)
            self.stdout.write(
                f"Serving on http://{addr}/ (web server pid {server.pid}) with the worker running "
                f"(pid {worker.pid}); logs in {self.log_dir}. Ctrl-C stops both."
            )
            self.stdout.flush()
            self._supervise(worker, server)
        finally:
            for proc in (server, worker):
                _stop(proc)

    # -- steps ---------------------------------------------------------------------

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))
        self.stdout.flush()

    def _start_worker(self) -> subprocess.Popen:
        self._step("Starting a render worker (celery, embedded broker)")
        cmd = [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-Q", "gpu,default",
               "--pool=solo", "-c", "1", "--loglevel=INFO", "-n", f"demo-{os.getpid()}@%h"]
        self.stdout.write(f"  worker log: {self.log_dir / 'worker.log'}")
        return _spawn(cmd, self.log_dir / "worker.log")

    def _demo_sweep(self, *, seeds: int):
        slugs = [m["slug"] for m in DEMO_MODELS]
        models = list(ImageModel.objects.filter(slug__in=slugs))
        suite = PromptSuite.objects.get(name=DEMO_SUITE)
        existing = (
            Sweep.objects.filter(suite=suite, name="demo").order_by("-id").first()
        )
        if existing is not None:
            self._step(f"Reusing sweep {existing.pk}")
            return existing
        self._step(f"Rendering {suite.prompts.count()} prompts × {len(models)} demo models")
        with transaction.atomic():
            sweep = sweep_create(
                suite=suite, image_models=models, seeds=list(range(seeds)),
                canvas_width=512, canvas_height=512, name="demo",
            )
        return sweep

    def _wait_for(self, sweep) -> None:
        last = None
        while True:
            totals = sweep_totals(sweep=sweep)
            line = f"  rendered {totals['done']}/{totals['total']}, failed {totals['failed']}"
            if line != last:
                self.stdout.write(line)
                self.stdout.flush()
                last = line
            if totals["done"] + totals["failed"] >= totals["total"]:
                break
            sweep_reconcile(sweep=sweep)
            time.sleep(1)
        if totals["failed"]:
            self.stderr.write(f"  {totals['failed']} images failed; see the admin's Generation list for the errors.")

    def _demo_study(self, *, sweep):
        study = Study.objects.filter(name=DEMO_STUDY, sweep=sweep).first()
        if study is None:
            study = study_create(sweep=sweep, name=DEMO_STUDY, mode="both", ratings_per_item=3,
                                 instructions="Score each image 1-10 for each question. Take your time.")
        if study.status != "open":
            study_open(study=study)
        return study

    def _staff_account(self) -> tuple[str, str]:
        """A fresh password each run, printed once; the account is reused."""
        User = get_user_model()
        user, _ = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        password = secrets.token_urlsafe(9)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return "admin", password

    def _invite(self, study) -> str:
        panelist = panelist_create(study=study)
        return f"{settings.SITE_URL}/r/{panelist.token}/"

    def _start_server(self, addr: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "gunicorn", "evalsite.wsgi", "-b", addr, "-w", "2", "--threads", "4",
               "--access-logfile", str(self.log_dir / "access.log"), "--graceful-timeout", "5",
               "--logger-class", "evalsite.logmask.GunicornLogger"]
        return _spawn(cmd, self.log_dir / "web.log")

    def _supervise(self, worker: subprocess.Popen, server: subprocess.Popen) -> None:
        stop = {"now": False}

        def _on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stop["now"]:
            for name, proc in (("worker", worker), ("web server", server)):
                if proc.poll() is not None:
                    raise CommandError(f"The {name} exited with code {proc.returncode}.")
            time.sleep(0.5)
        self.stdout.write("Stopping web server and worker…")


def _wait_until_serving(server: subprocess.Popen, addr: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError(f"The web server exited with code {server.returncode}; is {addr} in use?")
        try:
            with urllib.request.urlopen(f"http://{addr}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise CommandError(f"The web server did not answer on {addr} within {timeout:.0f} s.")


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    """A child in its own process group (so Ctrl-C reaches it only through us), output to a log."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=settings.BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
