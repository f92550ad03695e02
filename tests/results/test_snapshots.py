"""Leaderboard snapshots (issue 17): computed off the request path, served with their age.

- a new rating leads to a new snapshot (in-process, and through a real worker on the embedded
  filesystem broker, as `make demo` runs it);
- a page request never computes the board: it serves the latest snapshot and says how old it is
  and how many ratings arrived since, or that the first one is being computed;
- the debounce: one refresh queued per study and wait, at once after M new ratings;
- two web processes serve one snapshot (it lives in the database, not in a process's cache);
- past snapshots stay; an exclusion or a criterion change makes a new one; staff can force one.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse

from ratings import services
from ratings.models import Assignment, Panelist, Rating
from ratings.results import snapshots
from ratings.results.models import BoardSnapshot, SnapshotReason
from ratings.results.services import ratings_simulate
from ratings.selectors import criteria_for_prompt

BASE_DIR = Path(django_settings.BASE_DIR)


def _staff(client):
    user = get_user_model().objects.create_user("snap-staff", password="pw-snap-123", is_staff=True)
    for group in Group.objects.all():  # every role: the page's own permission is not under test here
        user.groups.add(group)
    client.force_login(user)
    return user


def answer(study, *, items: int = 1, score: int = 6) -> int:
    """A new panelist answers ``items`` items through the real services; returns the ratings stored."""
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    stored = 0
    for _ in range(items):
        item = Assignment.objects.select_related("shown_prompt").get(pk=services.assignment_next(panelist=panelist).pk)
        images = [item.left_id] + ([item.right_id] if item.right_id else [])
        crits = criteria_for_prompt(study=study, prompt=item.shown_prompt)
        stored += len(services.assignment_submit(assignment_id=item.pk, panelist=panelist,
                                                 scores={(g, c.pk): score for g in images for c in crits}))
    return stored


@pytest.fixture
def open_study(study_factory):
    study, models, prompts = study_factory(mode="single", n_models=3, n_prompts=6, k=1, gold=False)
    services.study_open(study=study)
    ratings_simulate(study=study, panelists=3, seed=1, max_items=12)
    return study


@pytest.mark.django_db
def test_page_never_computes_and_says_how_old_the_board_is(open_study, client, settings, monkeypatch):
    settings.RESULTS_COMPUTE_ON_READ = False
    sent = []
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    url = reverse("results:leaderboard", args=[open_study.pk])
    _staff(client)

    def boom(**kwargs):
        raise AssertionError("a page request computed the board")

    monkeypatch.setattr(snapshots, "leaderboard_compute", boom)
    first = client.get(url)  # no snapshot yet: the page says so and asks a worker for one
    assert first.status_code == 200
    assert "being computed" in first.content.decode()
    assert [name for name, _ in sent] == [snapshots.SNAPSHOT_TASK]
    assert not BoardSnapshot.objects.exists()

    monkeypatch.undo()
    snap = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.FIRST)  # what the task runs
    monkeypatch.setattr(snapshots, "leaderboard_compute", boom)
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    added = answer(open_study)
    page = client.get(url).content.decode()
    assert f'data-snapshot="{snap.pk}"' in page
    assert f"{added} new ratings since" in page
    assert BoardSnapshot.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_new_rating_leads_to_a_new_snapshot(open_study, settings):
    settings.RESULTS_COMPUTE_ON_READ = False
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the queued refresh runs here, through the real task
    first = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.FIRST)
    settings.RESULTS_SNAPSHOT_EVERY_RATINGS = 1  # refresh at once instead of after the debounce
    queued = []
    real_enqueue = snapshots._enqueue

    def enqueue_now(**kwargs):  # the eager Celery app runs send_task's target only through apply
        queued.append(kwargs)
        from ratings.results.tasks import board_snapshot_refresh_task

        board_snapshot_refresh_task.apply(args=[kwargs["study_id"], kwargs["reason"], kwargs["force"]])

    snapshots._enqueue = enqueue_now
    try:
        answer(open_study)  # the first rating of a wait queues the debounced refresh ...
        answer(open_study)  # ... and the next one passes the M-ratings threshold
    finally:
        snapshots._enqueue = real_enqueue
    assert queued and queued[0]["countdown"] == settings.RESULTS_SNAPSHOT_DEBOUNCE_SECONDS
    latest = snapshots.board_snapshot_latest(study=open_study)
    assert latest.pk != first.pk and latest.ratings_count == Rating.objects.filter(study=open_study).count()
    assert BoardSnapshot.objects.filter(pk=first.pk).exists()  # past snapshots stay


@pytest.mark.django_db
def test_debounce_queues_one_refresh_per_wait_and_at_once_after_m_ratings(open_study, settings, monkeypatch):
    settings.RESULTS_COMPUTE_ON_READ = False
    settings.RESULTS_SNAPSHOT_DEBOUNCE_SECONDS = 30
    settings.RESULTS_SNAPSHOT_EVERY_RATINGS = 10
    sent = []
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: sent.append(kw["countdown"]))
    for _ in range(3):
        snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=3)
    assert sent == [30]  # one refresh for the wait, 9 ratings < 10
    snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=3)
    assert sent == [30, 0]  # the 10th rating of the wait: at once
    for _ in range(5):
        snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=3)
    assert sent == [30, 0]  # one early refresh per wait
    snapshots.board_snapshot_request(study_id=open_study.pk, reason="exclusion")
    assert sent == [30, 0, 0]  # an exclusion never waits


@pytest.mark.django_db
def test_a_new_wait_starts_after_the_last_even_when_the_worker_shares_no_cache(open_study, settings, monkeypatch):
    """The embedded default: web and worker processes each have their own cache, so the worker's refresh
    cannot clear the web process's marks. The marks expire with the wait: the next rating starts a new one."""
    settings.RESULTS_COMPUTE_ON_READ = False
    settings.RESULTS_SNAPSHOT_DEBOUNCE_SECONDS = 1
    settings.RESULTS_SNAPSHOT_EVERY_RATINGS = 10
    sent = []
    monkeypatch.setattr(snapshots.current_app, "send_task", lambda name, **kw: sent.append(kw["countdown"]))
    assert snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=3)
    assert snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=9)  # early one
    assert not snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=30)
    time.sleep(1.2)  # the wait is over; nobody deleted its marks
    assert snapshots.board_snapshot_request(study_id=open_study.pk, reason="ratings", n_ratings=3)
    assert sent == [1, 0, 1]


@pytest.mark.django_db
def test_exclusion_and_criterion_change_make_new_snapshots_and_force_recomputes(open_study, client):
    first = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.FIRST)
    assert snapshots.board_snapshot_refresh(study=open_study).pk == first.pk  # same inputs: no new row
    services.panelist_exclude(panelist=Panelist.objects.filter(study=open_study).first(), reason="test")
    second = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.EXCLUSION)
    assert second.pk != first.pk and second.version != first.version
    services.criterion_save(study=open_study, key="aesthetics", name="Aesthetics", question="How beautiful?")
    third = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.CRITERIA)
    assert third.version != second.version
    assert "aesthetics" in [c["key"] for c in third.board["criteria"]]

    _staff(client)
    response = client.post(reverse("results:leaderboard_refresh", args=[open_study.pk]))
    assert response.status_code == 302
    forced = snapshots.board_snapshot_latest(study=open_study)
    assert forced.reason == SnapshotReason.FORCED and forced.version == third.version
    assert BoardSnapshot.objects.filter(study=open_study).count() == 4
    assert client.get(reverse("results:leaderboard_refresh", args=[open_study.pk])).status_code == 405


CHILD_PAGE = textwrap.dedent("""
    import os, re, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from ratings.results import snapshots
    def boom(**kw):
        raise SystemExit("computed in a request")
    snapshots.leaderboard_compute = boom
    c = Client(); c.force_login(get_user_model().objects.get(username="snap-staff"))
    page = c.get(os.environ["PAGE"]).content.decode()
    print(re.search(r'data-snapshot="(\\d+)"', page).group(1))
""")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_web_processes_serve_one_snapshot(open_study, client):
    _staff(client)
    snap = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.FIRST)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "PAGE": reverse("results:leaderboard", args=[open_study.pk]),
           "EVALSITE_RESULTS_COMPUTE_ON_READ": "0"}
    seen = [subprocess.run([sys.executable, "-c", CHILD_PAGE], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                           timeout=120) for _ in range(2)]
    assert [r.returncode for r in seen] == [0, 0], [r.stderr[-2000:] for r in seen]
    assert [r.stdout.strip() for r in seen] == [str(snap.pk)] * 2
    assert BoardSnapshot.objects.count() == 1


EMBEDDED_SETUP = textwrap.dedent("""
    import os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    django.setup()
    from ratings import services
    from tests.factories import make_sweep
    sweep, *_ = make_sweep(n_models=3, n_prompts=4, text_prompts=2)
    study = services.study_create(sweep=sweep, name="Embedded", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    print(study.pk)
""")
EMBEDDED_ANSWER = textwrap.dedent("""
    import os, sys, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    django.setup()
    from ratings.models import Study
    from tests.results.test_snapshots import answer
    answer(Study.objects.get(pk=int(sys.argv[1])), items=3, score=7)
""")


def _run(env, *args, timeout=180):
    result = subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_embedded_broker_worker_makes_the_snapshot(tmp_path):
    """SQLite file + filesystem:// broker + a real worker (`-Q gpu,default`, as make demo starts it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT")}
    env.update(EVALSITE_DATA_DIR=str(tmp_path / "data"), EVALSITE_RESULTS_DEBOUNCE_SECONDS="1",
               CELERY_TASK_ALWAYS_EAGER="0", PYTHONUNBUFFERED="1")
    _run(env, "manage.py", "migrate", "-v", "0")
    study_id = int(_run(env, "-c", EMBEDDED_SETUP).strip().splitlines()[-1])
    log = tmp_path / "worker.log"
    with embedded_worker(env, log=log, name="snap", queues="gpu,default"):
        _run(env, "-c", EMBEDDED_ANSWER, str(study_id))
        db = tmp_path / "data" / "db.sqlite3"
        deadline, rows = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT ratings_count FROM results_boardsnapshot WHERE study_id = ?",
                                    (study_id,)).fetchall()
                n = conn.execute("SELECT COUNT(*) FROM ratings_rating WHERE study_id = ?", (study_id,)).fetchone()[0]
            if rows and rows[-1][0] == n:
                break
            time.sleep(1)
        assert rows and rows[-1][0] == n > 0, log.read_text(errors="replace")[-4000:]


@contextmanager
def embedded_worker(env: dict, *, log: Path, name: str, queues: str) -> Iterator[subprocess.Popen]:
    """A real Celery worker process (solo pool, as `make demo` starts it), stopped with its process group."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-Q", queues, "--pool=solo", "-c", "1",
         "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=BASE_DIR, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield worker
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)


@pytest.mark.services
@pytest.mark.django_db
def test_a_refused_aggregate_falls_back_to_the_copy_stream(study_factory, monkeypatch):
    """Past 1 GB a column's bytea is refused: the fetch takes the COPY stream, inside the same transaction."""
    import psycopg

    from ratings.results import selectors as rs

    study, _, _ = study_factory(n_models=3, n_prompts=6, k=2)
    ratings_simulate(study=study, panelists=3, seed=2)
    want = rs.rating_arrays(study=study)

    def refuse(**kwargs):
        with connection.cursor() as cursor:  # a real server error, as the 1 GB limit gives
            cursor.cursor.execute("SELECT repeat('x', 1) || (SELECT 1/0)::text")
    monkeypatch.setattr(rs, "_int64_columns_by_aggregate", refuse)
    with pytest.raises(psycopg.errors.DivisionByZero):
        rs.rating_arrays(study=study)  # only the size refusals fall back
    monkeypatch.setattr(rs, "_int64_columns_by_aggregate",
                        lambda **kw: (_ for _ in ()).throw(psycopg.errors.ProgramLimitExceeded("too big")))
    got = rs.rating_arrays(study=study)
    order = lambda a: np.lexsort((a.criterion, a.generation, a.assignment))  # noqa: E731
    assert (got.score[order(got)] == want.score[order(want)]).all() and len(got) == len(want) > 0
    assert Rating.objects.filter(study=study).count() == len(want)  # the transaction is still usable


@pytest.mark.services
@pytest.mark.django_db
def test_copy_fetch_equals_the_cursor_fetch(study_factory):
    """PostgreSQL's COPY (FORMAT BINARY) path gives exactly the arrays of the plain cursor path."""
    from ratings.results import selectors as rs

    study, _, _ = study_factory(mode="both", n_models=3, n_prompts=6, k=2, gold=True)
    ratings_simulate(study=study, panelists=4, seed=3)
    services.panelist_exclude(panelist=Panelist.objects.filter(study=study).first(), reason="test")
    qs_arrays = rs.rating_arrays(study=study)
    assert len(qs_arrays) > 50 and qs_arrays.is_gold.any() and qs_arrays.excluded.any() and (qs_arrays.side > 0).any()
    sql, params = rs.rating_columns_sql(study=study)
    plain = rs._int64_columns_by_cursor(sql=sql, params=params, n_cols=len(rs._ARRAY_FIELDS))
    order_p = np.lexsort(plain[[1, 2, 4]])  # one rating per (answer, image, criterion): sort by it
    for fetch in (rs._int64_columns_by_copy, rs._int64_columns_by_aggregate):
        got = fetch(sql=sql, params=params, n_cols=len(rs._ARRAY_FIELDS))
        assert got.dtype == plain.dtype and (got[:, np.lexsort(got[[1, 2, 4]])] == plain[:, order_p]).all(), fetch
    # the packed column unpacks to each rating's own score, side and simulated flag
    Rating.objects.filter(pk__in=list(Rating.objects.filter(study=study).values_list("pk", flat=True)[:5])).update(
        is_simulated=False)
    got = rs.rating_arrays(study=study)
    side_code = {"single": 0, "left": 1, "right": 2}
    want = sorted((a, g, c, s, side_code[side], sim) for a, g, c, s, side, sim in Rating.objects.filter(study=study)
                  .values_list("assignment_id", "generation_id", "criterion_id", "score", "side", "is_simulated"))
    assert sorted(zip(got.assignment.tolist(), got.generation.tolist(), got.criterion.tolist(), got.score.tolist(),
                      got.side.tolist(), got.simulated.tolist(), strict=True)) == want
    assert not all(w[5] for w in want) and any(w[5] for w in want) and len({w[3] for w in want}) > 3


@pytest.mark.django_db
def test_snapshots_after_new_ratings_are_thinned_to_one_an_hour_and_kept_ones_stay(open_study, client, settings):
    """A busy study makes a snapshot every debounce (~8,600 a day, ~65 KB each at a million ratings): beyond the
    newest RESULTS_SNAPSHOT_KEEP_RECENT, those made after new ratings are thinned to the last of each hour. A kept
    table (staff's "Keep this table") and snapshots of any other reason stay; the refresh thins, a page never."""
    from datetime import timedelta

    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    settings.RESULTS_SNAPSHOT_KEEP_RECENT = 3
    first = snapshots.board_snapshot_refresh(study=open_study, reason=SnapshotReason.FIRST)
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    made = {}
    for hour in range(5):  # four snapshots after new ratings in each of five past hours
        for quarter in range(4):
            snap = BoardSnapshot.objects.create(
                study=open_study, created_at=base + timedelta(hours=hour, minutes=15 * quarter), version=f"v{hour}{quarter}",
                ratings_count=1, reason=SnapshotReason.RATINGS, compute_seconds=0.1, board=first.board)
            made[hour, quarter] = snap.pk
    BoardSnapshot.objects.filter(pk=made[0, 1]).update(kept=True)  # cited in a report
    forced = BoardSnapshot.objects.create(study=open_study, created_at=base + timedelta(minutes=50), version="f",
                                          ratings_count=1, reason=SnapshotReason.FORCED, compute_seconds=0.1,
                                          board=first.board)

    assert snapshots.board_snapshots_thin(study=open_study) == 20 - 3 - 1 - 4  # 3 newest, 1 kept, 4 hours' last
    left = set(BoardSnapshot.objects.filter(study=open_study).values_list("pk", flat=True))
    newest = {made[4, 3], made[4, 2], made[4, 1]}
    hours_last = {made[0, 3], made[1, 3], made[2, 3], made[3, 3]}
    assert left == newest | hours_last | {made[0, 1], forced.pk, first.pk}
    assert snapshots.board_snapshots_thin(study=open_study) == 0  # nothing twice
    settings.RESULTS_SNAPSHOT_KEEP_RECENT = 0
    assert snapshots.board_snapshots_thin(study=open_study, keep_recent=0) == 0  # 0 keeps every snapshot

    # staff keep a table from the page (POST); a GET writes nothing; another study's snapshot is a 404
    _staff(client)
    url = reverse("results:leaderboard_snapshot_keep", args=[open_study.pk, made[4, 1]])
    page_url = reverse("results:leaderboard", args=[open_study.pk]) + f"?snapshot={made[4, 1]}"
    with CaptureQueriesContext(connection) as queries:
        page = client.get(page_url).content.decode()
    assert 'id="keep-button"' in page and not [q for q in queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert client.get(url).status_code == 405
    response = client.post(url, {"kept": "1"})
    assert response.status_code == 302 and response["Location"] == page_url
    assert BoardSnapshot.objects.get(pk=made[4, 1]).kept
    page = client.get(page_url).content.decode()
    assert 'id="kept"' in page and "Stop keeping" in page
    assert client.post(reverse("results:leaderboard_snapshot_keep", args=[open_study.pk + 999, made[4, 1]])).status_code == 404
    assert client.post(reverse("results:leaderboard_snapshot_keep", args=[open_study.pk, 10**9])).status_code == 404
    client.post(url, {"kept": "0"})
    assert not BoardSnapshot.objects.get(pk=made[4, 1]).kept

    # the refresh thins after storing its snapshot
    settings.RESULTS_SNAPSHOT_KEEP_RECENT = 1
    answer(open_study)
    latest = snapshots.board_snapshot_refresh(study=open_study)
    assert latest.reason == SnapshotReason.RATINGS
    automatic = list(BoardSnapshot.objects.filter(study=open_study, reason=SnapshotReason.RATINGS, kept=False)
                     .values_list("pk", flat=True))
    assert latest.pk in automatic and made[4, 2] not in automatic and made[0, 3] in automatic
