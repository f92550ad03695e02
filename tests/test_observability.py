"""Opt-in observability: JSON logs, Prometheus metrics, Sentry (each off unless its variable is set)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone

from evalsite.observability import EvalsiteCollector, _scrub_event
from evalsite.views import metrics
from generation.models import Generation, GenerationStatus

SETUP = "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='evalsite.settings';django.setup();"


def _fresh(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(settings.BASE_DIR),
               "EVALSITE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run([sys.executable, "-c", SETUP + code], env=environ, capture_output=True, text=True,
                          cwd=settings.BASE_DIR, timeout=120)


def test_json_logs_when_asked(tmp_path):
    done = _fresh("import logging;logging.getLogger('evalsite.test').warning('rendered %d images', 3)", tmp_path,
                  EVALSITE_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["level"] == "WARNING" and record["logger"] == "evalsite.test"
    assert record["message"] == "rendered 3 images" and "time" in record
    plain = _fresh("import logging;logging.getLogger('evalsite.test').warning('hi')", tmp_path)
    assert plain.stderr.strip().endswith("WARNING evalsite.test: hi")


def test_metrics_are_off_by_default_and_on_with_the_variable(tmp_path):
    code = ("from django.conf import settings as s;from django.urls import resolve;"
            "print('django_prometheus' in s.INSTALLED_APPS, s.MIDDLEWARE[0].startswith('django_prometheus'),"
            " resolve('/metrics').url_name)")
    on = _fresh(code, tmp_path, EVALSITE_METRICS="1")
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["True", "True", "metrics"]
    off = _fresh(code, tmp_path)
    assert off.returncode != 0 and "Resolver404" in off.stderr


@pytest.mark.django_db
def test_images_per_second_queue_depth_and_ratings_per_second(study_factory, settings):
    study, models, prompts = study_factory(mode="single", n_models=2, n_prompts=3)
    gens = list(Generation.objects.filter(sweep=study.sweep))
    now = timezone.now()
    Generation.objects.filter(pk__in=[g.pk for g in gens[:3]]).update(finished_at=now - timedelta(seconds=10))
    Generation.objects.filter(pk__in=[g.pk for g in gens[3:]]).update(finished_at=now - timedelta(hours=1))
    Generation.objects.filter(pk=gens[5].pk).update(status=GenerationStatus.PENDING)
    settings.METRICS_TOKEN = ""
    body = metrics(RequestFactory().get("/metrics")).content.decode()
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
              if line.startswith("evalsite_")}
    assert values["evalsite_images_rendered_total"] == 5
    assert values["evalsite_images_per_second"] == pytest.approx(3 / 300)
    assert values['evalsite_render_queue_depth{status="pending"}'] == 1
    assert values["evalsite_ratings_total"] == 0 and values["evalsite_ratings_per_second"] == 0
    settings.METRICS_TOKEN = "s3cret"
    assert metrics(RequestFactory().get("/metrics")).status_code == 401
    assert metrics(RequestFactory().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")).status_code == 200
    assert list(EvalsiteCollector().collect())  # the collector itself, as REGISTRY calls it


def test_sentry_events_arrive_with_invite_tokens_masked(tmp_path):
    received: list[bytes] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            data = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(gzip.decompress(data) if self.headers.get("Content-Encoding") == "gzip" else data)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = ("import sentry_sdk\n"
                "with sentry_sdk.new_scope() as scope:\n"
                "    scope.set_context('request', {})\n"
                "    scope.add_event_processor(lambda e, h: {**e, 'request': {'url': 'https://x.org/r/SECRET-TOKEN-1/a/3/'}})\n"
                "    sentry_sdk.capture_exception(ZeroDivisionError('boom'))\n"
                "sentry_sdk.flush(5)\n")
        done = _fresh(code, tmp_path, SENTRY_DSN=f"http://publickey@127.0.0.1:{server.server_port}/1")
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
    payload = b"".join(received).decode("utf-8", "replace")
    assert "ZeroDivisionError" in payload and "/r/<token>/a/3/" in payload
    assert "SECRET-TOKEN-1" not in payload


def test_scrub_event_masks_urls_transaction_and_breadcrumbs():
    event = {"request": {"url": "https://e.org/r/abc123/", "headers": {"Referer": "https://e.org/r/abc123/i/x/"}},
             "transaction": "/r/abc123/", "breadcrumbs": {"values": [{"message": "GET /r/abc123/start/"}]}}
    scrubbed = json.dumps(_scrub_event(event, {}))
    assert "abc123" not in scrubbed and scrubbed.count("/r/<token>") == 4
