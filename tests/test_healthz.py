"""/healthz checks templates + static files, the database, the cache and the broker, and names what failed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings

REPORT = ("import json;from evalsite.health import health_report;"
          "print(json.dumps(health_report()))")


def _report(tmp_path, **env: str) -> dict:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EVALSITE_DATA_DIR": str(tmp_path / "data"), **env}
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", REPORT], cwd=settings.BASE_DIR, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_healthz_ok(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {
        "ok": True, "failed": [], "checks": {"templates": "ok", "database": "ok", "cache": "ok", "broker": "ok"}}


def test_healthz_answers_probes_from_any_host_and_over_plain_http(client, db, settings):
    """Container probes use http://127.0.0.1:8000 whatever DJANGO_ALLOWED_HOSTS and the HTTPS redirect say."""
    settings.ALLOWED_HOSTS = ["evalsite.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/", HTTP_HOST="127.0.0.1:8000").status_code == 400  # other pages keep both checks


def test_healthz_names_the_missing_static_manifest(client, db, settings, tmp_path):
    """The compose failure of issue 13: manifest storage without a collectstatic manifest."""
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
    settings.STATIC_ROOT = tmp_path / "empty"
    response = client.get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 503 and body["failed"] == ["templates"]
    assert "Missing staticfiles manifest entry for 'css/site.css'" in body["checks"]["templates"]


def test_healthz_names_each_unreachable_service(tmp_path):
    """Database, cache and broker on a port where nothing listens: all three are reported, templates pass."""
    report = _report(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:9/nothing",
                     CACHE_URL="redis://127.0.0.1:9/1", CELERY_BROKER_URL="redis://127.0.0.1:9/0")
    assert report["ok"] is False
    assert report["failed"] == ["database", "cache", "broker"], report
    assert "9" in report["checks"]["database"] and report["checks"]["templates"] == "ok"


@pytest.mark.services
def test_healthz_ok_on_postgres_and_redis(tmp_path):
    report = _report(tmp_path, DATABASE_URL=settings_database_url(), CACHE_URL=settings.CELERY_BROKER_URL,
                     CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
    assert report == {"ok": True, "failed": [],
                      "checks": {"templates": "ok", "database": "ok", "cache": "ok", "broker": "ok"}}


def settings_database_url() -> str:
    d = settings.DATABASES["default"]
    return f"postgres://{d['USER']}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"
