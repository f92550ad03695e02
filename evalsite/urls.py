from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("prompts.urls")),
    path("", include("generation.urls")),
    path("", include("ratings.urls")),
    path("", include("ratings.urls_results")),
]
