"""Who may do what on the staff pages: one permission per role, one decorator for every custom page.

Roles are Django permissions (declared in each app's Meta.permissions) collected into groups by
``setup_roles`` (also run after every ``migrate``). A custom page answers like the admin does:
anonymous visitors and non-staff accounts are sent to the staff login; a staff account without the
permission gets 403. Superusers have every permission.

New staff pages use ``@staff_permission_required(PERM_…)``; the URL × role test in
tests/security/test_roles.py walks the URLconf and fails on a staff page without one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse

PERM_MANAGE_STUDY = "ratings.manage_study"      # create/open/close studies, invites, sharing, criteria, panelists
PERM_VIEW_RESULTS = "ratings.view_results"      # leaderboard page and leaderboard.csv (unblinded model names)
PERM_EXPORT_RATINGS = "ratings.export_ratings"  # raw ratings.csv (every rating with model and panelist)
PERM_RUN_SWEEP = "generation.run_sweep"         # start, retry and watch sweeps; import images into a sweep
PERM_MANAGE_MODELS = "generation.manage_models"  # add and change image models (the admin)
PERM_REMOTE_CODE = "generation.allow_remote_code"  # let a model run its own code on the workers
PERM_UPLOAD_SUITE = "prompts.upload_suite"      # upload/replace prompt suites

# Group name -> permissions ("app_label.codename"); the custom permission first, then the admin's own.
ROLES: dict[str, tuple[str, ...]] = {
    "Study managers": (PERM_MANAGE_STUDY, "ratings.add_study", "ratings.change_study", "ratings.view_study",
                       "ratings.add_criterion", "ratings.change_criterion", "ratings.view_criterion",
                       "ratings.change_panelist", "ratings.view_panelist", "generation.view_sweep"),
    "Results viewers": (PERM_VIEW_RESULTS, "ratings.view_study"),
    "Ratings exporters": (PERM_EXPORT_RATINGS, "ratings.view_study"),
    "Sweep runners": (PERM_RUN_SWEEP, "generation.view_sweep", "generation.change_sweep",
                      "generation.view_generation", "generation.view_imagemodel", "prompts.view_promptsuite"),
    "Model managers": (PERM_MANAGE_MODELS, "generation.add_imagemodel", "generation.change_imagemodel",
                       "generation.view_imagemodel", "generation.add_gpuprice", "generation.change_gpuprice",
                       "generation.delete_gpuprice", "generation.view_gpuprice", "generation.view_vramprofile"),
    "Model code trust": (PERM_REMOTE_CODE,),
    "Suite uploaders": (PERM_UPLOAD_SUITE, "prompts.add_promptsuite", "prompts.change_promptsuite",
                        "prompts.view_promptsuite", "prompts.view_prompt"),
}


def staff_permission_required(*perms: str) -> Callable:
    """A staff page open to active staff holding any one of ``perms`` (the view records them)."""
    if not perms:
        raise ValueError("name at least one permission")

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            user = request.user
            if not (user.is_active and user.is_staff):
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            if not any(user.has_perm(p) for p in perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.required_permissions = perms
        return wrapped

    return decorator


def user_may(user, perm: str) -> bool:
    """An active staff account with this permission (what a page's links and buttons show)."""
    return bool(user.is_active and user.is_staff and user.has_perm(perm))


def roles_ensure() -> dict[str, int]:
    """Create or update the role groups with exactly their permissions; returns permissions per group."""
    out = {}
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is None:
                raise LookupError(f"permission {perm} does not exist (migrate first)")
            wanted.append(found)
        group.permissions.set(wanted)
        out[name] = len(wanted)
    return out
