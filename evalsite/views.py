from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database reachability, for docker-compose and load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def home(request: HttpRequest) -> HttpResponse:
    """Staff land on their studies; anyone else sees what the site is and where to go."""
    if request.user.is_authenticated and request.user.is_staff:
        return redirect("ratings:study_list")
    return render(request, "home.html")
