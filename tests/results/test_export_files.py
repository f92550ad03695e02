"""Background exports (issue 17, point 3): above RESULTS_EXPORT_BACKGROUND_ROWS ratings, ratings.csv is written
by the real task into the media storage and offered for download; up to it, it streams as before.

- the task writes a file with one row per rating, byte for byte the streamed ratings.csv, 0600 in 0700 folders;
- the exports page before (Preparing… (N rows), no link) and after (the download link); GET never writes;
- who may: Ratings exporters (403 for other staff, the login for panelists and outsiders, 404 across studies);
- the threshold switch (at the threshold it streams, one rating more and it goes to the exports page);
- a redelivered task writes nothing twice; a failure is recorded with its message.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evalsite.celery import app
from ratings.models import ExportFile, ExportStatus, Rating
from ratings.results import export_files
from ratings.results.services import ratings_simulate
from ratings.results.tasks import export_file_write_task
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def rated(study_factory):
    study, _, _ = study_factory(mode="both", n_models=3, n_prompts=4, k=1, gold=False)
    ratings_simulate(study=study, panelists=3, seed=2)
    n = Rating.objects.filter(study=study).count()
    assert n > 20
    return study, n


@pytest.fixture
def exporter(client):
    client.force_login(staff_user("exporter", roles=("Ratings exporters",)))
    return client


@pytest.fixture
def eager():
    """The enqueued task runs in-process at once, through Celery (apply_async -> the real task)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _streamed(client, study) -> bytes:
    response = client.get(reverse("results:ratings_csv", args=[study.pk]))
    assert response.status_code == 200 and response.streaming
    return b"".join(response.streaming_content)


def _download(client, export) -> bytes:
    response = client.get(reverse("results:export_download", args=[export.study_id, export.pk]))
    assert response.status_code == 200, response.status_code
    assert 'filename="ratings-' in response["Content-Disposition"] and response["Cache-Control"] == "private, no-store"
    return b"".join(response.streaming_content)


def test_threshold_switch(rated, exporter, settings):
    study, n = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = n  # at the threshold: streamed, as before
    assert _streamed(exporter, study).count(b"\r\n") == n + 1
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = n - 1  # one rating above it: the exports page
    response = exporter.get(reverse("results:ratings_csv", args=[study.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("results:exports", args=[study.pk])
    assert not ExportFile.objects.exists()  # a GET asks for nothing
    page = exporter.get(response["Location"]).content.decode()
    assert 'id="export-button"' in page and f"({n} rows)" in page and 'id="stream-link"' not in page


def test_the_task_writes_the_file_and_the_page_offers_it(rated, exporter, settings, eager,
                                                       django_capture_on_commit_callbacks):
    study, n = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = n + 1
    streamed = _streamed(exporter, study)  # what the file must hold: the streamed export of the same ratings
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = 10
    url = reverse("results:exports", args=[study.pk])

    with CaptureQueriesContext(connection) as queries:
        before = exporter.get(url)
    assert before.status_code == 200 and before["Cache-Control"] == "private, no-store"
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = exporter.post(reverse("results:export_request", args=[study.pk]))
    assert response.status_code == 302 and response["Location"] == url
    export = ExportFile.objects.get()
    assert (export.status, export.rows_expected, export.requested_by.username) == (ExportStatus.QUEUED, n, "exporter")
    assert len(callbacks) == 1  # sent after commit, not before

    waiting = exporter.get(url).content.decode()
    assert f"Preparing… ({n} rows)" in waiting and 'id="export-download"' not in waiting
    assert 'hx-trigger="every 3s"' in waiting and 'id="export-button"' not in waiting
    assert exporter.get(url, HTTP_HX_REQUEST="true").content.decode().lstrip().startswith('<section class="card" id="export-status"')
    with django_capture_on_commit_callbacks(execute=True):
        exporter.post(reverse("results:export_request", args=[study.pk]))  # asked again while queued: the same one
    assert ExportFile.objects.count() == 1

    callbacks[0]()  # the commit: apply_async runs the real task here
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.rows == n and export.file.name.startswith("exports/")
    path = Path(export.file.path)
    assert path.is_relative_to(Path(settings.MEDIA_ROOT) / "exports")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert export.size_bytes == path.stat().st_size

    ready = exporter.get(url).content.decode()
    link = reverse("results:export_download", args=[study.pk, export.pk])
    assert f'href="{link}"' in ready and "Preparing" not in ready and f"({n} rows" in ready
    body = _download(exporter, export)
    assert body == streamed
    assert len(list(csv.reader(io.StringIO(body.decode())))) - 1 == n == Rating.objects.filter(study=study).count()

    assert export_file_write_task.apply(kwargs={"export_id": export.pk}).get() == ExportStatus.DONE
    export.refresh_from_db()  # a redelivered task claims nothing: the same file, written once
    assert export.file.name == ExportFile.objects.get().file.name and len(os.listdir(path.parent)) == 1

    leaderboard = exporter.get(reverse("results:leaderboard", args=[study.pk]))
    assert leaderboard.status_code == 403  # the exporter role alone does not open the leaderboard


def test_the_leaderboard_links_the_exports_page_above_the_threshold(rated, admin_client, settings):
    study, n = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = n - 1
    page = admin_client.get(reverse("results:leaderboard", args=[study.pk])).content.decode()
    assert f'href="{reverse("results:exports", args=[study.pk])}" id="ratings-export"' in page
    assert f"prepared by a worker: {n} ratings" in page
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = n
    page = admin_client.get(reverse("results:leaderboard", args=[study.pk])).content.decode()
    assert 'id="ratings-export"' not in page and f'href="{reverse("results:ratings_csv", args=[study.pk])}"' in page


def test_bom_and_a_failure_are_recorded(rated, settings, tmp_path):
    study, n = rated
    export = export_files.export_file_request(study=study, bom=True)
    media = settings.MEDIA_ROOT
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = blocked
    failed = export_files.export_file_write(export_id=export.pk)
    assert failed.status == ExportStatus.FAILED and failed.error and not failed.file.name
    assert export_files.export_file_ready(study=study, export_id=export.pk) is None
    settings.MEDIA_ROOT = media
    again = export_files.export_file_request(study=study, bom=True)
    assert again.pk != export.pk  # a failed export is finished: a new one can be asked for
    done = export_files.export_file_write(export_id=again.pk)
    assert done.status == ExportStatus.DONE and done.rows == n
    with done.file.open("rb") as fh:
        assert fh.read(3) == b"\xef\xbb\xbf"


def test_who_may_ask_see_and_download(rated, client, settings, study_factory):
    study, n = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = 10
    export = export_files.export_file_request(study=study)
    export_files.export_file_write(export_id=export.pk)
    urls = {"page": reverse("results:exports", args=[study.pk]),
            "download": reverse("results:export_download", args=[study.pk, export.pk])}
    ask = reverse("results:export_request", args=[study.pk])

    viewer = staff_user("viewer", roles=("Results viewers", "Study managers"))
    client.force_login(viewer)
    for url in urls.values():
        assert client.get(url).status_code == 403
    assert client.post(ask).status_code == 403
    client.logout()

    for url in (*urls.values(), ask):  # outsiders and panelists: the staff login, never the file
        response = client.get(url) if url != ask else client.post(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    from ratings.services import panelist_create

    panelist = panelist_create(study=study)
    client.get(f"/r/{panelist.token}/")
    response = client.get(urls["download"])
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert ExportFile.objects.count() == 1

    client.force_login(staff_user("exporter", roles=("Ratings exporters",)))
    assert client.get(urls["download"]).status_code == 200
    other, _, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1)
    assert client.get(reverse("results:export_download", args=[other.pk, export.pk])).status_code == 404
    unfinished = export_files.export_file_request(study=study)
    assert client.get(reverse("results:export_download", args=[study.pk, unfinished.pk])).status_code == 404
    assert client.get(urls["download"].replace("/ratings.csv", "/x")).status_code == 404


EMBEDDED_REQUEST = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
django.setup()
from ratings.models import Study
from ratings.results.export_files import export_file_request
print(export_file_request(study=Study.objects.get(pk=int(sys.argv[1]))).pk)
"""


@pytest.mark.slow
def test_embedded_broker_worker_writes_the_export(tmp_path):
    """SQLite file + filesystem:// broker + a real worker on the default queue, as `make demo` runs it."""
    import sqlite3
    import time

    from tests.results.test_snapshots import EMBEDDED_ANSWER, EMBEDDED_SETUP, _run, embedded_worker

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT")}
    env.update(EVALSITE_DATA_DIR=str(tmp_path / "data"), CELERY_TASK_ALWAYS_EAGER="0", PYTHONUNBUFFERED="1")
    _run(env, "manage.py", "migrate", "-v", "0")
    study_id = int(_run(env, "-c", EMBEDDED_SETUP).strip().splitlines()[-1])
    _run(env, "-c", EMBEDDED_ANSWER, str(study_id))
    export_id = int(_run(env, "-c", EMBEDDED_REQUEST, str(study_id)).strip().splitlines()[-1])
    log = tmp_path / "worker.log"
    with embedded_worker(env, log=log, name="export", queues="default"):
        db = tmp_path / "data" / "db.sqlite3"
        deadline, row = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT status, rows, file FROM ratings_exportfile WHERE id = ?",
                                   (export_id,)).fetchone()
                n = conn.execute("SELECT COUNT(*) FROM ratings_rating WHERE study_id = ?", (study_id,)).fetchone()[0]
            if row and row[0] in ("done", "failed"):
                break
            time.sleep(1)
        assert row and row[0] == "done", (row, log.read_text(errors="replace")[-4000:])
        path = tmp_path / "data" / "media" / row[2]
        assert row[1] == n > 0 and path.read_bytes().count(b"\r\n") == n + 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_the_newest_files_are_kept_and_a_deleted_row_takes_its_file(rated, exporter, settings, eager,
                                                                        django_capture_on_commit_callbacks):
    """RESULTS_EXPORT_KEEP: writing a fourth export deletes the oldest file (its row stays, marked removed, with no
    link); deleting a row deletes its file once committed."""
    study, n = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = 10
    settings.RESULTS_EXPORT_KEEP = 3
    done = []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            exporter.post(reverse("results:export_request", args=[study.pk]))
        done.append(ExportFile.objects.latest("id"))
    paths = []
    for e in done:
        e.refresh_from_db()
        paths.append(Path(settings.MEDIA_ROOT) / e.file.name if e.file.name else None)
    assert [e.status for e in done] == [ExportStatus.DONE] * 4
    assert paths[0] is None and not done[0].file  # the oldest: its file deleted, its row kept
    assert all(p is not None and p.is_file() for p in paths[1:])
    assert len(os.listdir(paths[1].parent)) == 3
    page = exporter.get(reverse("results:exports", args=[study.pk])).content.decode()
    assert reverse("results:export_download", args=[study.pk, done[0].pk]) + '"' not in page
    assert page.count('class="muted export-removed"') == 1 and "the newest 3 are kept" in page
    for e in done[1:]:
        assert f'href="{reverse("results:export_download", args=[study.pk, e.pk])}"' in page
    assert exporter.get(reverse("results:export_download", args=[study.pk, done[0].pk])).status_code == 404

    assert export_files.export_files_prune(study=study, keep=1) == 2  # the setting's 0 would keep every file
    assert sorted(p.name for p in paths[1].parent.iterdir()) == [paths[3].name]
    with django_capture_on_commit_callbacks(execute=True):
        ExportFile.objects.get(pk=done[3].pk).delete()  # what the admin's delete does
    assert not paths[3].exists() and ExportFile.objects.count() == 3


def test_the_admin_lists_exports_read_only(rated, admin_client, settings, eager, django_capture_on_commit_callbacks):
    study, _ = rated
    settings.RESULTS_EXPORT_BACKGROUND_ROWS = 10
    with django_capture_on_commit_callbacks(execute=True):
        export_files.export_file_request(study=study)
    export = ExportFile.objects.get()
    listing = admin_client.get(reverse("admin:ratings_exportfile_changelist"))
    assert listing.status_code == 200 and export.file.name in listing.content.decode()
    assert admin_client.get(reverse("admin:ratings_exportfile_add")).status_code == 403
    detail = admin_client.get(reverse("admin:ratings_exportfile_change", args=[export.pk])).content.decode()
    assert 'name="rows"' not in detail  # nothing to edit: the task writes these
