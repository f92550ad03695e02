from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("sweeps/", views.sweep_list, name="sweep_list"),
    path("sweeps/new/", views.sweep_new, name="sweep_new"),
    path("sweeps/new/preview/", views.sweep_preview, name="sweep_preview"),
    path("sweeps/workers/ask/", views.workers_ask, name="workers_ask"),
    path("sweeps/<int:sweep_id>/", views.sweep_detail, name="sweep_detail"),
    path("sweeps/<int:sweep_id>/retry/", views.sweep_retry, name="sweep_retry"),
    path("sweeps/<int:sweep_id>/cancel/", views.sweep_cancel_view, name="sweep_cancel"),
    path("sweeps/<int:sweep_id>/gallery/", views.sweep_gallery, name="sweep_gallery"),
    path("sweeps/<int:sweep_id>/gallery/prompt/<int:prompt_id>/", views.gallery_prompt, name="gallery_prompt"),
    path("sweeps/<int:sweep_id>/import/", views.sweep_import, name="sweep_import"),
    path("sweeps/models/", views.model_list, name="model_list"),
    path("sweeps/models/<int:model_id>/", views.model_detail, name="model_detail"),
    path("sweeps/models/<int:model_id>/profile/", views.model_vram_profile, name="model_vram_profile"),
    path("sweeps/images/<str:public_id>/", views.gallery_image, name="gallery_image"),
    path("sweeps/images/<str:public_id>/file/", views.staff_image, name="staff_image"),
    path("sweeps/images/<str:public_id>/thumb/", views.staff_thumbnail, name="staff_thumbnail"),
]
