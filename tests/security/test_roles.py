"""Issue 12 (4): every URL of the site × every role, for GET and for POST.

The URLconf is walked (admin excluded: it checks its own permissions), so a page pushed later is
covered without editing this file: a staff page must declare its permission through
``evalsite.access.staff_permission_required``, and the table below pins the permission of every
page known today. Denied staff get 403 as the admin answers; anyone else the staff login; a denied
POST changes nothing in the database.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from evalsite.access import (
    PERM_EXPORT_RATINGS,
    PERM_MANAGE_STUDY,
    PERM_RUN_SWEEP,
    PERM_UPLOAD_SUITE,
    PERM_VIEW_RESULTS,
    ROLES,
    roles_ensure,
)
from generation.models import Generation, Sweep
from ratings import services
from ratings.models import Assignment, Criterion, Panelist, Rating, Study

pytestmark = pytest.mark.django_db

# Pages anyone may reach (their own checks: a panelist token is the credential).
PUBLIC = {"home", "healthz"}
PANELIST_PREFIX = "r/"
# The permission each staff page needs today (any one of them); a page not listed here still has to
# declare one, and is then checked against what it declares.
EXPECTED = {
    "ratings:study_list": {PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, PERM_EXPORT_RATINGS},
    "ratings:study_new": {PERM_MANAGE_STUDY},
    "ratings:ratings_upload": {PERM_MANAGE_STUDY},
    "ratings:study_dashboard": {PERM_MANAGE_STUDY},
    "ratings:study_set_status": {PERM_MANAGE_STUDY},
    "ratings:study_invite": {PERM_MANAGE_STUDY},
    "ratings:study_share": {PERM_MANAGE_STUDY},
    "ratings:study_criterion": {PERM_MANAGE_STUDY},
    "ratings:panelist_manage": {PERM_MANAGE_STUDY},
    "results:leaderboard_csv": {PERM_VIEW_RESULTS},
    "results:leaderboard_refresh": {PERM_VIEW_RESULTS},  # issue 17: recompute the snapshot now
    "results:leaderboard_snapshot_keep": {PERM_VIEW_RESULTS},  # keep a cited table from thinning
    "results:differences_csv": {PERM_VIEW_RESULTS},
    "results:leaderboard_full_csv": {PERM_VIEW_RESULTS},  # issue 17: the whole board in long form
    "results:ratings_csv": {PERM_EXPORT_RATINGS},
    # issue 17: background exports: the same permission as ratings.csv for the page, the request and the file
    "results:exports": {PERM_EXPORT_RATINGS},
    "results:export_request": {PERM_EXPORT_RATINGS},
    "results:export_download": {PERM_EXPORT_RATINGS},
    "generation:sweep_list": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:sweep_detail": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:sweep_new": {PERM_RUN_SWEEP},
    "generation:sweep_retry": {PERM_RUN_SWEEP},
    # issue 15: starting, cancelling and importing need run_sweep; looking at a sweep's images either role
    "generation:sweep_preview": {PERM_RUN_SWEEP},
    "generation:workers_ask": {PERM_RUN_SWEEP},
    "generation:sweep_cancel": {PERM_RUN_SWEEP},
    "generation:sweep_import": {PERM_RUN_SWEEP},
    "generation:sweep_gallery": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:gallery_prompt": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:gallery_image": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:staff_image": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "generation:staff_thumbnail": {PERM_RUN_SWEEP, PERM_MANAGE_STUDY},
    "prompts:suite_upload": {PERM_UPLOAD_SUITE},
}
# Staff pages that also serve panelists (results made public): checked by hand below.
MIXED = {"results:leaderboard": {PERM_VIEW_RESULTS}}
ACTIONS = {"ratings:study_set_status": "open", "ratings:panelist_manage": "revoke"}


def _walk(patterns, prefix="", ns=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.app_name == "admin":
                continue
            yield from _walk(p.url_patterns, prefix + str(p.pattern), f"{ns}{p.namespace}:" if p.namespace else ns)
        elif isinstance(p, URLPattern):
            yield f"{ns}{p.name}" if p.name else None, prefix + str(p.pattern), p


PATTERNS = list(_walk(get_resolver().url_patterns))
ROLE_NAMES = ["anonymous", "panelist", "user", "staff"] + list(ROLES) + ["superuser"]


def test_every_pattern_has_a_name_and_a_declared_access():
    missing = []
    for name, route, pattern in PATTERNS:
        perms = getattr(pattern.callback, "required_permissions", None)
        if name is None:
            missing.append(f"{route}: no name")
        elif name in PUBLIC or route.startswith(PANELIST_PREFIX) or name in MIXED:
            continue
        elif not perms:
            missing.append(f"{route} ({name}): a staff page with no staff_permission_required")
        elif name in EXPECTED and set(perms) != EXPECTED[name]:
            missing.append(f"{name}: needs {sorted(perms)}, expected {sorted(EXPECTED[name])}")
    assert not missing, missing
    assert set(EXPECTED) <= {n for n, _, _ in PATTERNS}  # the table names real pages


@pytest.fixture
def world(study_factory):
    roles_ensure()
    study, models, prompts = study_factory(mode="both", n_models=3, n_prompts=4, k=2, gold=False)
    services.study_open(study=study)
    services.study_share_enable(study=study)
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    assignment = services.assignment_next(panelist=panelist)
    generation = Generation.objects.get(pk=assignment.left_id)
    draft, _, _ = study_factory(mode="single", n_models=2, n_prompts=2, k=1, gold=False)
    return {"study": study, "draft": draft, "panelist": panelist, "assignment": assignment,
            "generation": generation}


def _kwargs(name, pattern, world):
    values = {"token": world["panelist"].token, "ref": world["assignment"].ref,
              "public_id": world["generation"].public_id, "pk": world["draft"].pk,
              "study_id": world["study"].pk, "sweep_id": world["study"].sweep_id,
              "panelist_id": world["panelist"].pk, "action": ACTIONS.get(name, "x")}
    if name == "ratings:panelist_manage":
        values["pk"] = world["study"].pk
    out = {}
    for key, converter in pattern.pattern.converters.items():
        if key in values:
            out[key] = values[key]
        else:
            out[key] = 1 if converter.regex.startswith("[0-9]") else "x"
    return out


def _client_for(role, client, world):
    User = get_user_model()
    if role == "anonymous":
        return client
    if role == "panelist":
        client.get(f"/r/{world['panelist'].token}/")
        return client
    # no passwords: hashing one per role would cost seconds on a shared CPU
    if role == "superuser":
        client.force_login(User.objects.get_or_create(username="root", is_staff=True, is_superuser=True)[0])
        return client
    user, _ = User.objects.get_or_create(username=f"u-{role}", is_staff=role != "user")
    if role in ROLES:
        user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


def _allowed(role, perms) -> bool:
    if role == "superuser":
        return True
    return role in ROLES and bool(set(perms) & set(ROLES[role]))


def _state():
    """What a state-changing POST could change."""
    return (
        list(Study.objects.order_by("pk").values_list("pk", "status", "share_token", "mode", "sweep_id")),
        list(Panelist.objects.order_by("pk").values_list("pk", "revoked_at", "excluded")),
        Criterion.objects.count(), Sweep.objects.count(), Assignment.objects.count(), Rating.objects.count(),
        list(Generation.objects.order_by("pk").values_list("pk", "status")),
    )


def _login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


STAFF = [(n, r, p) for n, r, p in PATTERNS if n not in PUBLIC and n not in MIXED and not r.startswith(PANELIST_PREFIX)]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(("name", "route", "pattern"), STAFF, ids=[n for n, _, _ in STAFF])
def test_staff_page_by_role(name, route, pattern, method, world, client_factory):
    perms = pattern.callback.required_permissions
    url = reverse(name, kwargs=_kwargs(name, pattern, world))
    seen = {}
    for role in ROLE_NAMES:
        client = _client_for(role, client_factory(), world)
        before = _state()
        response = getattr(client, method)(url)
        seen[role] = response.status_code
        assert response.status_code < 500, (role, url, response.status_code)
        if _allowed(role, perms):
            assert response.status_code != 403 and not _login_redirect(response), (role, url)
            continue
        if role in ("anonymous", "panelist", "user"):
            assert _login_redirect(response), (role, url, response.status_code)
        else:
            assert response.status_code == 403, (role, url, response.status_code)
        assert _state() == before, (role, method, url)
    assert any(_allowed(r, perms) for r in ROLES), f"{name}: no role may use it"


def test_leaderboard_by_role(world, client_factory):
    url = reverse("results:leaderboard", kwargs={"study_id": world["study"].pk})
    expect = {"anonymous": "login", "user": "login", "panelist": "login", "staff": 403, "superuser": 200}
    for role in ROLE_NAMES:
        response = _client_for(role, client_factory(), world).get(url)
        want = expect.get(role, 200 if PERM_VIEW_RESULTS in ROLES.get(role, ()) else 403)
        if want == "login":
            assert _login_redirect(response), role
        else:
            assert response.status_code == want, (role, response.status_code)


PANELIST = [(n, r, p) for n, r, p in PATTERNS if r.startswith(PANELIST_PREFIX)]


@pytest.mark.parametrize(("name", "route", "pattern"), PANELIST, ids=[n for n, _, _ in PANELIST])
def test_panelist_pages_need_the_token_not_a_role(name, route, pattern, world, client_factory):
    """Any role with a wrong token is refused without a 500; no staff role opens a panelist's page."""
    kwargs = _kwargs(name, pattern, world)
    kwargs["token"] = "not-a-token"
    url = reverse(name, kwargs=kwargs)
    for role in ("anonymous", "staff", "superuser"):
        for method in ("get", "post"):
            response = getattr(_client_for(role, client_factory(), world), method)(url)
            assert response.status_code in (403, 404, 405), (role, method, url, response.status_code)


def test_setup_roles_is_idempotent(db):
    from io import StringIO

    from django.core.management import call_command

    call_command("setup_roles", stdout=StringIO())
    call_command("setup_roles", stdout=StringIO())
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    group = Group.objects.get(name="Results viewers")
    assert {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()} == set(ROLES["Results viewers"])


@pytest.fixture
def client_factory():
    from django.test import Client

    return Client
