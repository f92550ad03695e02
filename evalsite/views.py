import os
import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from evalsite.access import PERM_EXPORT_RATINGS, PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, user_may
from evalsite.health import healthz_response
from evalsite.observability import EvalsiteCollector


def healthz(request: HttpRequest) -> JsonResponse:
    """Templates + static, database, cache and broker, for docker-compose and load balancers.

    Normally answered by evalsite.health.HealthzMiddleware before this view is reached."""
    return healthz_response()


def home(request: HttpRequest) -> HttpResponse:
    """Staff who may see studies land on them; anyone else sees what the site is and where to go."""
    if any(user_may(request.user, p) for p in (PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, PERM_EXPORT_RATINGS)):
        return redirect("ratings:study_list")
    return render(request, "home.html")


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (EVALSITE_METRICS=1). With PROMETHEUS_MULTIPROC_DIR set (several gunicorn
    processes), the per-process metrics are merged; evalsite's own come from the database either way."""
    # Optional: prometheus_client loads only where EVALSITE_METRICS=1 routes /metrics here.
    import prometheus_client
    from prometheus_client import multiprocess

    if settings.METRICS_TOKEN and not secrets.compare_digest(
            request.headers.get("Authorization", ""), f"Bearer {settings.METRICS_TOKEN}"):
        return HttpResponse("metrics need the bearer token", status=401, content_type="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_metrics = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(process_metrics)
    else:
        process_metrics = prometheus_client.REGISTRY
    sources = (process_metrics, EvalsiteCollector())

    class Exposition:
        def collect(self):
            for source in sources:
                yield from source.collect()

    return HttpResponse(prometheus_client.generate_latest(Exposition()),
                        content_type=prometheus_client.CONTENT_TYPE_LATEST)
