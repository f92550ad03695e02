from django.urls import path

from . import views

app_name = "prompts"
urlpatterns = [
    path("suites/upload/", views.suite_upload, name="suite_upload"),
]
