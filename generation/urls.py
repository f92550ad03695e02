from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("sweeps/", views.sweep_list, name="sweep_list"),
    path("sweeps/new/", views.sweep_new, name="sweep_new"),
    path("sweeps/<int:sweep_id>/", views.sweep_detail, name="sweep_detail"),
    path("sweeps/<int:sweep_id>/retry/", views.sweep_retry, name="sweep_retry"),
]
