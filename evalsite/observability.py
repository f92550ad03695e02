"""Opt-in observability: Sentry errors, Prometheus metrics (django-prometheus plus evalsite's own), JSON logs.

Each is off unless its environment variable is set (README "Observability"); settings.py calls
``sentry_init``; the /metrics view (evalsite.views.metrics) adds ``EvalsiteCollector`` to django-prometheus's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings

from evalsite.celery import app

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

# Invite and share tokens are credentials: they never leave in an error report (h12 masks them in logs).
_TOKEN_PATH = re.compile(r"/r/[^/?#]+")
RATE_WINDOW_SECONDS = 300


def mask_invite_tokens(text: str) -> str:
    return _TOKEN_PATH.sub("/r/<token>", text)


def _scrub_event(event: Event, hint: Hint) -> Event:
    """Sentry's ``before_send``: invite tokens masked in the request URL, Referer, transaction and breadcrumbs."""
    request = event.get("request") or {}
    for key in ("url", "query_string"):
        value = request.get(key)
        if isinstance(value, str):
            request[key] = mask_invite_tokens(value)
    headers = request.get("headers") or {}
    if isinstance(headers, dict) and isinstance(referer := headers.get("Referer"), str):
        headers["Referer"] = mask_invite_tokens(referer)
    if isinstance(transaction := event.get("transaction"), str):
        event["transaction"] = mask_invite_tokens(transaction)
    breadcrumbs = event.get("breadcrumbs") or {}
    for crumb in breadcrumbs.get("values", []) if isinstance(breadcrumbs, dict) else []:
        if isinstance(message := crumb.get("message"), str):
            crumb["message"] = mask_invite_tokens(message)
    return event


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Errors of the web process and the workers go to Sentry; no personal data, tokens masked."""
    # Optional: Sentry loads only in a process whose settings set SENTRY_DSN.
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(dsn=dsn, environment=environment, traces_sample_rate=traces_sample_rate,
                    send_default_pii=False, before_send=_scrub_event,
                    integrations=[DjangoIntegration(), CeleryIntegration()])


class EvalsiteCollector:
    """Read from the database at scrape time, so every gunicorn process reports the same numbers and
    images rendered by workers on other hosts count too."""

    def collect(self) -> Iterator[Any]:
        # settings.py imports this module (sentry_init): the models load at scrape time (and prometheus_client
        # only where metrics are on).
        from django.db.models import Count
        from django.utils import timezone
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from generation.models import Generation, GenerationStatus
        from ratings.models import Rating

        since = timezone.now() - timedelta(seconds=RATE_WINDOW_SECONDS)
        by_status = dict(Generation.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        rendered = CounterMetricFamily("evalsite_images_rendered", "Images rendered, all sweeps.")
        rendered.add_metric([], by_status.get(GenerationStatus.DONE, 0))
        yield rendered
        per_second = GaugeMetricFamily(
            "evalsite_images_per_second", f"Images finished per second over the last {RATE_WINDOW_SECONDS} s.")
        recent = Generation.objects.filter(status=GenerationStatus.DONE, finished_at__gte=since).count()
        per_second.add_metric([], recent / RATE_WINDOW_SECONDS)
        yield per_second
        depth = GaugeMetricFamily("evalsite_render_queue_depth", "Images waiting or rendering.", labels=["status"])
        for status in (GenerationStatus.PENDING, GenerationStatus.RUNNING):
            depth.add_metric([status], by_status.get(status, 0))
        yield depth
        broker = self._broker_depth()
        if broker is not None:
            messages = GaugeMetricFamily("evalsite_broker_queue_messages", "Messages in the broker's queue.",
                                         labels=["queue"])
            for queue, count in broker.items():
                messages.add_metric([queue], count)
            yield messages
        ratings = CounterMetricFamily("evalsite_ratings", "Ratings given (simulated ones excluded).")
        ratings.add_metric([], Rating.objects.filter(is_simulated=False).count())
        yield ratings
        rate = GaugeMetricFamily(
            "evalsite_ratings_per_second", f"Ratings per second over the last {RATE_WINDOW_SECONDS} s.")
        rate.add_metric([], Rating.objects.filter(is_simulated=False, created_at__gte=since).count() / RATE_WINDOW_SECONDS)
        yield rate

    @staticmethod
    def _broker_depth() -> dict[str, int] | None:
        """Messages waiting in the gpu and default queues (Redis only; None elsewhere or when unreachable)."""
        if not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")):
            return None

        try:
            with app.connection_for_read() as conn:
                client = conn.default_channel.client
                return {queue: int(client.llen(queue)) for queue in ("gpu", "default")}
        except Exception:
            return None
