from django.contrib import admin
from django.urls import include, path

from evalsite.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("prompts.urls")),
    path("", include("generation.urls")),
    path("", include("ratings.urls")),
    path("", include("ratings.urls_results")),
]
