from django.urls import path

from . import views

app_name = "results"
urlpatterns = [
    path("studies/<int:study_id>/leaderboard/", views.leaderboard, name="leaderboard"),
    path("studies/<int:study_id>/leaderboard/refresh/", views.leaderboard_refresh, name="leaderboard_refresh"),
    path("studies/<int:study_id>/leaderboard/snapshots/<int:snapshot_id>/keep/", views.leaderboard_snapshot_keep,
         name="leaderboard_snapshot_keep"),
    path("studies/<int:study_id>/leaderboard.csv", views.leaderboard_csv, name="leaderboard_csv"),
    path("studies/<int:study_id>/leaderboard-full.csv", views.leaderboard_full_csv, name="leaderboard_full_csv"),
    path("studies/<int:study_id>/differences.csv", views.differences_csv, name="differences_csv"),
    path("studies/<int:study_id>/ratings.csv", views.ratings_csv, name="ratings_csv"),
    path("studies/<int:study_id>/exports/", views.exports, name="exports"),
    path("studies/<int:study_id>/exports/new/", views.export_request, name="export_request"),
    path("studies/<int:study_id>/exports/<int:export_id>/ratings.csv", views.export_download, name="export_download"),
    path("r/<str:token>/results/", views.panelist_results, name="panelist_results"),
]
