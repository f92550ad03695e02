from django.urls import path

from . import views_results

app_name = "results"
urlpatterns = [
    path("studies/<int:study_id>/leaderboard/", views_results.leaderboard, name="leaderboard"),
    path("studies/<int:study_id>/leaderboard.csv", views_results.leaderboard_csv, name="leaderboard_csv"),
    path("studies/<int:study_id>/ratings.csv", views_results.ratings_csv, name="ratings_csv"),
    path("r/<str:token>/results/", views_results.panelist_results, name="panelist_results"),
]
