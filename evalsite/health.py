"""What /healthz checks: templates and static files, the database, the cache and the broker.

Each check returns None when it passes or a short reason. The middleware answers /healthz before host
validation and the HTTPS redirect, so container probes (``curl http://127.0.0.1:8000/healthz``) work
with production ``DJANGO_ALLOWED_HOSTS`` and ``DJANGO_SECURE=1``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from evalsite.celery import app

HEALTHZ_PATH = "/healthz"
BROKER_TIMEOUT_SECONDS = 3.0


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def check_templates_and_static() -> str | None:
    """Render the base template (every {% static %} of it resolves) and find each file it links."""
    try:
        html = render_to_string("base.html", {})
    except Exception as exc:  # a missing manifest entry raises ValueError here
        return _reason(exc)
    prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL
    names = re.findall(re.escape(prefix) + r'([^"\'?#\s]+)', html)
    if not names:
        return "base.html links no static file"
    manifest = bool(getattr(staticfiles_storage, "manifest_name", None))
    for name in names:
        if manifest:
            found = Path(settings.STATIC_ROOT, name).is_file()
        else:
            found = bool(finders.find(name)) or Path(settings.STATIC_ROOT, name).is_file()
        if not found:
            return f"static file {name} is missing"
    return None


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _reason(exc)
    return None


def check_cache() -> str | None:
    nonce = secrets.token_hex(8)
    try:
        cache.set("evalsite:healthz", nonce, timeout=30)
        value = cache.get("evalsite:healthz")
    except Exception as exc:
        return _reason(exc)
    return None if value == nonce else "a value written to the cache did not read back"


def check_broker() -> str | None:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
            if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
                folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
                if not folder.is_dir():
                    return f"broker folder {folder} is missing"
            else:
                channel = conn.default_channel  # opening a channel needs the broker to answer
                if hasattr(channel, "client") and hasattr(channel.client, "ping"):
                    channel.client.ping()  # Redis
    except Exception as exc:
        return _reason(exc)
    return None


CHECKS: dict[str, Callable[[], str | None]] = {
    "templates": check_templates_and_static,
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def health_report() -> dict:
    """{"ok": bool, "checks": {name: "ok" | reason}, "failed": [names]}."""
    results = {name: check() for name, check in CHECKS.items()}
    failed = [name for name, reason in results.items() if reason is not None]
    return {"ok": not failed, "failed": failed,
            "checks": {name: reason or "ok" for name, reason in results.items()}}


def healthz_response() -> JsonResponse:
    report = health_report()
    response = JsonResponse(report, status=200 if report["ok"] else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthzMiddleware:
    """First in MIDDLEWARE: /healthz skips host validation, the HTTPS redirect and sessions."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTHZ_PATH and request.method in ("GET", "HEAD"):
            return healthz_response()
        return self.get_response(request)
