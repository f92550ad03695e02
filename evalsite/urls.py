from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from evalsite.views import healthz, home, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("", include("prompts.urls")),
    path("", include("generation.urls")),
    path("", include("ratings.urls")),
    path("", include("ratings.results.urls")),
]

if settings.METRICS_ENABLED:
    urlpatterns.append(path("metrics", metrics, name="metrics"))
