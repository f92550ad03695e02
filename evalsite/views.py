from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from evalsite.access import PERM_EXPORT_RATINGS, PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, user_may


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database reachability, for docker-compose and load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def home(request: HttpRequest) -> HttpResponse:
    """Staff who may see studies land on them; anyone else sees what the site is and where to go."""
    if any(user_may(request.user, p) for p in (PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, PERM_EXPORT_RATINGS)):
        return redirect("ratings:study_list")
    return render(request, "home.html")
