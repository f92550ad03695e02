"""Panel load: N concurrent simulated panelists against gunicorn + PostgreSQL, on loopback only.

What it does, end to end:
  1. creates a throwaway PostgreSQL database (dropped at the end, whatever happens);
  2. migrates it and fills it: a suite, models, a rendered sweep (small PNGs), an open
     study (singles + pairs, k ratings per item, gold items on) and N consented panelists;
  3. starts gunicorn itself on a free 127.0.0.1 port against that database;
  4. runs N panelist threads (one keep-alive connection each). A panelist loads its page,
     then repeatedly waits a "think time", POSTs its scores the way the page does (htmx,
     CSRF header) and gets the next item in the same response ("submit + next"), and
     fetches the item's images;
  5. prints p50/p95/p99 latency and errors per request kind, then checks the database:
     every accepted answer is there exactly once, no rating is duplicated, no item went
     past its k.

    python benchmarks/panel_load.py --panelists 100 --duration 60

The think time (default 4-8 s an item) is quicker than a person scoring two or three
questions on one or two images (10-30 s), so the offered load is above a real panel's;
--think 1-3 is a stress run, --think 0 measures saturation.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
ACTION = re.compile(r'hx-post="(/r/[^"]+/a/[\w-]+/)"')
FIELD = re.compile(r'type="radio" name="((?:single|left|right)-[\w-]+)"')
IMG = re.compile(r'<img src="([^"]+)"')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--panelists", type=int, default=100)
    p.add_argument("--duration", type=float, default=60.0, help="Seconds of load after everyone has started.")
    p.add_argument("--think", default="4-8",
                   help="Think time per item in seconds: 'a-b' uniform, or one number (0 = none: saturation).")
    p.add_argument("--prompts", type=int, default=200)
    p.add_argument("--models", type=int, default=5)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--canvas", type=int, default=256, help="Image side in pixels.")
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
    p.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker (gthread).")
    p.add_argument("--pg", default=os.environ.get("PANEL_LOAD_PG", "postgres://postgres@127.0.0.1:5432/postgres"),
                   help="Admin connection used to create and drop the throwaway database (loopback only).")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep-db", action="store_true", help="Do not drop the database (debugging).")
    return p.parse_args()


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"panel_load runs on loopback only; refusing host {host!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_sql(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql)


# --- data ---------------------------------------------------------------------------


def build_data(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Migrate the throwaway DB and fill it; returns the study id and the panelists' tokens."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from PIL import Image, ImageDraw

    from generation.models import Generation, GenerationStatus, ImageModel, Sweep
    from prompts.models import Prompt, PromptSuite
    from ratings import services

    call_command("migrate", verbosity=0)
    rng = random.Random(args.seed)
    suite = PromptSuite.objects.create(name="panel-load")
    prompts = Prompt.objects.bulk_create(
        Prompt(suite=suite, position=i + 1, text=f"a photo of scene {i} with {rng.choice(['a cat', 'a car', 'a tree'])}",
               text_sha256=f"{i:064x}", category="Text" if i % 10 == 0 else "General",
               expected_text="OPEN" if i % 10 == 0 else "")
        for i in range(args.prompts)
    )
    models = [ImageModel.objects.create(slug=f"load-model-{i}", name=f"Load model {i}", source=f"org/load-{i}")
              for i in range(args.models)]
    sweep = Sweep.objects.create(suite=suite, seeds=[0], canvas_width=args.canvas, canvas_height=args.canvas,
                                 image_format="png", status="done")
    sweep.image_models.set(models)
    for m_i, model in enumerate(models):
        for prompt in prompts:
            img = Image.new("RGB", (args.canvas, args.canvas), (rng.randrange(256), 150, 200))
            ImageDraw.Draw(img).ellipse([40, 40, 40 + 20 * (m_i + 1), 90], fill=(250, 210, 60))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            gen = Generation(sweep=sweep, prompt=prompt, model=model, seed=0, status=GenerationStatus.DONE,
                             width=args.canvas, height=args.canvas)
            gen.image.save("x.png", ContentFile(buf.getvalue()), save=False)
            gen.save()
    study = services.study_create(sweep=sweep, name="panel load", mode="both", ratings_per_item=args.k,
                                  gold_enabled=True)
    services.study_open(study=study)
    tokens = []
    for _ in range(args.panelists):
        p = services.panelist_create(study=study, is_simulated=True)
        services.panelist_consent(panelist=p)
        tokens.append(p.token)
    from django.db import connection, connections

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk load; plans use the indexes
    connections.close_all()
    return study.pk, tokens


def check_database(*, study_id: int, accepted: int, scores_sent: int) -> dict:
    from django.db import connection
    from django.db.models import Count, F

    from ratings.models import Assignment, AssignmentStatus, Rating, StudyItem

    done = Assignment.objects.filter(study_id=study_id, status=AssignmentStatus.DONE).count()
    ratings = Rating.objects.filter(study_id=study_id).count()
    duplicated = (
        Rating.objects.filter(study_id=study_id).values("assignment_id", "generation_id", "criterion_id")
        .annotate(n=Count("id")).filter(n__gt=1).count()
    )
    over_k = StudyItem.objects.filter(study_id=study_id, n_done__gt=F("target")).count()
    per_item = (
        Assignment.objects.filter(study_id=study_id, status=AssignmentStatus.DONE, item__isnull=False)
        .values("item_id").annotate(n=Count("id"))
    )
    targets = dict(StudyItem.objects.filter(study_id=study_id).values_list("id", "target"))
    over_k += sum(1 for r in per_item if r["n"] > targets[r["item_id"]])
    connection.close()
    return {"answers_accepted": accepted, "assignments_done": done, "scores_sent": scores_sent,
            "ratings_in_db": ratings, "lost": scores_sent - ratings if ratings < scores_sent else 0,
            "extra": ratings - scores_sent if ratings > scores_sent else 0,
            "duplicated_cells": duplicated, "items_over_k": over_k}


# --- the simulated panelists -----------------------------------------------------------


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latency: dict[str, list[float]] = field(default_factory=lambda: {"page": [], "submit+next": [], "image": []})
    errors: dict[str, int] = field(default_factory=lambda: {"page": 0, "submit+next": 0, "image": 0})
    error_samples: list[str] = field(default_factory=list)
    accepted: int = 0
    scores_sent: int = 0
    finished: int = 0

    def record(self, kind: str, seconds: float, ok: bool, sample: str = "") -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind}: {sample}")


def think_time(spec: str, rng: random.Random) -> float:
    if "-" in spec:
        lo, hi = (float(x) for x in spec.split("-", 1))
        return rng.uniform(lo, hi)
    return float(spec)


def panelist(token: str, port: int, deadline: float, think: str, stats: Stats, seed: int,
             start_by: float) -> None:
    rng = random.Random(seed)
    time.sleep(rng.uniform(0, max(start_by - time.monotonic(), 0)))  # staggered arrival
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    cookies: dict[str, str] = {}

    def request(method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "keep-alive", **(headers or {})}
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            return None, str(error).encode(), time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
        for header, value in resp.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, data, elapsed

    status, body, elapsed = request("GET", f"/r/{token}/")
    stats.record("page", elapsed, status == 200, f"{status} {body[:120]!r}")
    html = body.decode(errors="replace") if status == 200 else ""
    while html and time.monotonic() < deadline:
        action = ACTION.search(html)
        if not action:
            break  # nothing left for this panelist
        for src in IMG.findall(html):
            s, b, e = request("GET", src)
            stats.record("image", e, s == 200, f"{s} {src}")
        time.sleep(think_time(think, rng))
        names = sorted(set(FIELD.findall(html)))
        form = "&".join(f"{n}={rng.randint(1, 10)}" for n in names) + f"&elapsed_ms={rng.randint(2000, 9000)}"
        status, body, elapsed = request(
            "POST", action.group(1), body=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true",
                     "X-CSRFToken": cookies.get("csrftoken", ""), "Origin": f"http://127.0.0.1:{port}",
                     "Referer": f"http://127.0.0.1:{port}/r/{token}/"},
        )
        ok = status == 200 and b"Saved." in body
        stats.record("submit+next", elapsed, ok, f"{status} {body[:160]!r}")
        if ok:
            with stats.lock:
                stats.accepted += 1
                stats.scores_sent += len(names)
        html = body.decode(errors="replace") if status == 200 else ""
    conn.close()
    with stats.lock:
        stats.finished += 1


# --- report ------------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (gunicorn workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def table(stats: Stats, wall: float) -> str:
    lines = ["| Request | n | errors | p50 ms | p95 ms | p99 ms | max ms | per s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, values in stats.latency.items():
        ms = [v * 1000 for v in values]
        lines.append(
            f"| {kind} | {len(ms)} | {stats.errors[kind]} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {pct(ms, 99):.1f} "
            f"| {max(ms) if ms else float('nan'):.1f} | {len(ms) / wall:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    loopback_only(args.pg)
    db_name = f"evalsite_panel_load_{uuid.uuid4().hex[:8]}"
    base = urlsplit(args.pg)
    db_url = f"{base.scheme}://{base.netloc}/{db_name}"
    workdir = Path(tempfile.mkdtemp(prefix="panel_load_"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "evalsite.settings",
        "DATABASE_URL": db_url,
        "DATABASE_CONN_MAX_AGE": "600",
        "EVALSITE_DATA_DIR": str(workdir),
        "DJANGO_SECRET_KEY": "panel-load-" + uuid.uuid4().hex,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    admin_sql(args.pg, f'CREATE DATABASE "{db_name}"')
    server = None
    try:
        t0 = time.perf_counter()
        study_id, tokens = build_data(args)
        print(f"data: {args.prompts} prompts x {args.models} models, k={args.k}, {len(tokens)} panelists "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "evalsite.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
             "--keep-alive", "30", "--log-level", "warning", "--backlog", "256"],
            cwd=ROOT, env=env, start_new_session=True,
        )
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        load_before = os.getloadavg()[0]
        server_cpu0, client_cpu0 = tree_cpu_seconds(server.pid), time.process_time()
        stats = Stats()
        ramp = 5.0
        start = time.monotonic()
        deadline = start + ramp + args.duration
        threads = [
            threading.Thread(target=panelist, args=(tok, port, deadline, args.think, stats, args.seed * 1000 + i,
                                                    start + ramp), daemon=True)
            for i, tok in enumerate(tokens)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.duration + ramp + 120)
        wall = time.monotonic() - start
        load_after = os.getloadavg()[0]
        server_cpu = tree_cpu_seconds(server.pid) - server_cpu0
        client_cpu = time.process_time() - client_cpu0
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        server = None
        result = check_database(study_id=study_id, accepted=stats.accepted, scores_sent=stats.scores_sent)
        think = f"{args.think} s" if args.think != "0" else "none"
        print(f"\nPanel load: {args.panelists} concurrent panelists, think time {think}, {wall:.0f} s, "
              f"gunicorn {args.workers} workers x {args.threads} threads (gthread), PostgreSQL, "
              f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before / {load_after:.1f} at the end "
              f"(the machine is shared)\n")
        print(table(stats, wall))
        n_requests = sum(len(v) for v in stats.latency.values())
        print(f"\nCPU: gunicorn {server_cpu:.1f} s ({1000 * server_cpu / max(n_requests, 1):.1f} ms a request), "
              f"these {args.panelists} simulated panelists {client_cpu:.1f} s, over {wall:.0f} s of wall time "
              f"(PostgreSQL not counted)\n")
        print("| Database check | value |\n|---|---:|")
        for k, v in result.items():
            print(f"| {k} | {v} |")
        if stats.error_samples:
            print("\nerror samples:\n  " + "\n  ".join(stats.error_samples))
        p95 = pct([v * 1000 for v in stats.latency["submit+next"]], 95)
        errors = sum(stats.errors.values())
        ok = (p95 < 50 and errors == 0 and result["lost"] == 0 and result["extra"] == 0
              and result["duplicated_cells"] == 0 and result["items_over_k"] == 0
              and result["answers_accepted"] == result["assignments_done"])
        print(f"\ntarget (p95 submit+next < 50 ms, 0 errors, 0 lost/duplicated, none over k): {'MET' if ok else 'NOT MET'}"
              f" (p95 {p95:.1f} ms)")
        return 0 if ok else 1
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
