from django.urls import path

app_name = "prompts"
urlpatterns: list = []
