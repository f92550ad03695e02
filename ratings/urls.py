from django.urls import path

from . import import_views, views

app_name = "ratings"
urlpatterns = [
    # Panelists (no account: the token is the credential).
    path("r/<str:token>/", views.panelist_home, name="panelist_home"),
    path("r/<str:token>/start/", views.panelist_start, name="panelist_start"),
    path("r/<str:token>/a/<str:ref>/", views.assignment_answer, name="assignment_answer"),
    path("r/<str:token>/a/<str:ref>/change/", views.assignment_change, name="assignment_change"),
    path("r/<str:token>/a/<str:ref>/skip/", views.assignment_skip, name="assignment_skip"),
    path("r/<str:token>/i/<str:public_id>/", views.panelist_image, name="panelist_image"),
    # Staff.
    path("studies/", views.study_list, name="study_list"),
    path("studies/new/", views.study_new, name="study_new"),
    path("studies/import/", import_views.ratings_upload, name="ratings_upload"),
    path("studies/<int:pk>/", views.study_dashboard, name="study_dashboard"),
    path("studies/<int:pk>/status/<str:action>/", views.study_set_status, name="study_set_status"),
    path("studies/<int:pk>/invite/", views.study_invite, name="study_invite"),
    path("studies/<int:pk>/share/", views.study_share, name="study_share"),
    path("studies/<int:pk>/criteria/", views.study_criterion, name="study_criterion"),
    path("studies/<int:pk>/panelists/<int:panelist_id>/<str:action>/", views.panelist_manage, name="panelist_manage"),
]
