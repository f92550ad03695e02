"""Panelist and staff pages through Django's test client: flow, htmx swaps, refusals, access."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from ratings import services
from ratings.models import Assignment, AssignmentStatus, Panelist, Rating, StudyStatus
from ratings.selectors import criteria_for_prompt
from tests.factories import make_sweep, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def open_study():
    sweep, models, prompts, gens = make_sweep()
    study = services.study_create(sweep=sweep, name="pages", gold_enabled=False)
    services.study_open(study=study)
    return study


def _consented(study):
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    return panelist


def _form_fields(html: str) -> list[str]:
    return sorted(set(re.findall(r'type="radio" name="((?:single|left|right)-[\w-]+)"', html)))


def _answer_all(client, panelist, html: str, value: str = "7", htmx: bool = True):
    action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
    data = {name: value for name in _form_fields(html)}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(action, data, headers=headers)


def test_consent_first_then_rating_page(client, open_study):
    panelist = services.panelist_create(study=open_study)
    url = reverse("ratings:panelist_home", kwargs={"token": panelist.token})
    page = client.get(url)
    assert page.status_code == 200
    assert b"I agree, start rating" in page.content
    assert not Assignment.objects.filter(panelist=panelist).exists()
    start = client.post(reverse("ratings:panelist_start", kwargs={"token": panelist.token}))
    assert start.status_code == 302
    page = client.get(url)
    html = page.content.decode()
    assert page["Cache-Control"] == "private, no-store"
    assert "Item <strong>1</strong> of" in html
    assert "<legend>" in html and 'aria-live="polite"' in html
    assert _form_fields(html)


def test_htmx_submit_returns_next_item_and_saved_message(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    first = Assignment.objects.get(panelist=panelist, status=AssignmentStatus.OPEN)
    response = _answer_all(client, panelist, html)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-swap-oob="innerHTML">Saved.' in body
    assert "<html" not in body  # a fragment, not a page
    first.refresh_from_db()
    assert first.status == AssignmentStatus.DONE
    assert Rating.objects.filter(assignment=first).count() == len(_form_fields(html))
    assert "Item <strong>2</strong>" in body


def test_plain_post_redirects_back(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    response = _answer_all(client, panelist, html, htmx=False)
    assert response.status_code == 302


def test_missing_score_keeps_choices_and_says_what_is_missing(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
    fields = _form_fields(html)
    response = client.post(action, {fields[0]: "4"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Please score every criterion" in body
    assert f'name="{fields[0]}" value="4" required checked' in body
    assert not Rating.objects.exists()


@pytest.mark.parametrize("value", ["0", "11", "-1", "5.5", "abc", ""])
def test_out_of_range_scores_refused(client, open_study, value):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    response = _answer_all(client, panelist, html, value=value)
    assert response.status_code == 400
    assert not Rating.objects.exists()


def test_criterion_not_in_study_refused(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
    data = {name: "5" for name in _form_fields(html)}
    side = _form_fields(html)[0].split("-")[0]
    data[f"{side}-aesthetics"] = "5"
    response = client.post(action, data, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert b"not a criterion of this study" in response.content
    assert not Rating.objects.exists()


def test_double_submit_refused_once_saved(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    first = _answer_all(client, panelist, html)
    assert first.status_code == 200
    again = _answer_all(client, panelist, html)
    assert again.status_code == 409
    assert b"already saved" in again.content
    assert Rating.objects.filter(panelist=panelist).count() == len(_form_fields(html))


def test_other_panelists_item_and_image_are_refused(client, open_study):
    alice, bob = _consented(open_study), _consented(open_study)
    client.get(f"/r/{alice.token}/")
    mine = Assignment.objects.get(panelist=alice, status=AssignmentStatus.OPEN)
    criteria = criteria_for_prompt(study=open_study, prompt=mine.shown_prompt)
    side = "single" if mine.kind == "single" else "left"
    response = client.post(f"/r/{bob.token}/a/{mine.ref}/", {f"{side}-{criteria[0].key}": "5"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert b"not assigned to you" in response.content
    assert client.get(f"/r/{bob.token}/i/{mine.left.public_id}/").status_code == 404
    assert client.get(f"/r/{alice.token}/i/{mine.left.public_id}/").status_code == 200
    assert client.get(f"/r/not-a-token/i/{mine.left.public_id}/").status_code == 404


def test_revoked_link_and_closed_study_refused(client, open_study):
    panelist = _consented(open_study)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    services.panelist_revoke(panelist=Panelist.objects.get(pk=panelist.pk))
    assert client.get(f"/r/{panelist.token}/").status_code == 403
    response = _answer_all(client, panelist, html)
    assert response.status_code == 403 and b"revoked" in response.content
    other = _consented(open_study)
    html = client.get(f"/r/{other.token}/").content.decode()
    services.study_close(study=open_study)
    response = _answer_all(client, other, html)
    assert response.status_code == 403 and b"closed" in response.content
    assert not Rating.objects.exists()


def test_skip_needs_reason_and_gives_next(client, open_study):
    panelist = _consented(open_study)
    client.get(f"/r/{panelist.token}/")
    current = Assignment.objects.get(panelist=panelist, status=AssignmentStatus.OPEN)
    url = f"/r/{panelist.token}/a/{current.ref}/skip/"
    assert client.post(url, {"reason": ""}, headers={"HX-Request": "true"}).status_code == 400
    response = client.post(url, {"reason": "The image did not load"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and b"Skipped." in response.content
    current.refresh_from_db()
    assert current.status == AssignmentStatus.SKIPPED and current.skip_reason == "The image did not load"


def test_csrf_enforced_on_answers(open_study):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    panelist = _consented(open_study)
    html = strict.get(f"/r/{panelist.token}/").content.decode()
    action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
    response = strict.post(action, {name: "5" for name in _form_fields(html)})
    assert response.status_code == 403
    assert not Rating.objects.exists()


def test_shared_link_mints_one_panelist_per_visitor(client, open_study):
    token = services.study_share_enable(study=open_study)
    page = client.get(f"/r/{token}/")
    assert page.status_code == 200 and b"I agree" in page.content
    assert not Panelist.objects.exists()
    start = client.post(f"/r/{token}/start/")
    panelist = Panelist.objects.get()
    assert start["Location"] == f"/r/{panelist.token}/"
    assert panelist.consented_at is not None
    # The same visitor comes back through the shared link: same panelist.
    assert client.get(f"/r/{token}/")["Location"] == f"/r/{panelist.token}/"
    client.post(f"/r/{token}/start/")
    assert Panelist.objects.count() == 1
    from django.test import Client

    Client().post(f"/r/{token}/start/")
    assert Panelist.objects.count() == 2


def test_staff_pages_need_staff(client, open_study, django_user_model):
    for url in ["/studies/", "/studies/new/", f"/studies/{open_study.pk}/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.post(f"/studies/{open_study.pk}/invite/").status_code == 302
    assert not Panelist.objects.exists()
    user = django_user_model.objects.create_user("plain", password="x" * 12)
    client.force_login(user)
    assert client.get(f"/studies/{open_study.pk}/").status_code == 302


def test_staff_dashboard_invite_exclude_close(client, open_study, admin_user):
    client.force_login(admin_user)
    page = client.get(f"/studies/{open_study.pk}/")
    assert page.status_code == 200
    assert b"Rating progress" in page.content and b"leaderboard.csv" in page.content
    client.post(f"/studies/{open_study.pk}/invite/")
    panelist = Panelist.objects.get()
    page = client.get(f"/studies/{open_study.pk}/")
    assert f"/r/{panelist.token}/".encode() in page.content
    client.post(f"/studies/{open_study.pk}/panelists/{panelist.pk}/exclude/", {"excluded": "on", "reason": "gold"})
    panelist.refresh_from_db()
    assert panelist.excluded and panelist.excluded_reason == "gold"
    client.post(f"/studies/{open_study.pk}/status/close/")
    open_study.refresh_from_db()
    assert open_study.status == StudyStatus.CLOSED


def test_staff_create_study_and_add_criterion(client, admin_user):
    sweep, *_ = make_sweep(n_models=2, n_prompts=2)
    client.force_login(admin_user)
    response = client.post("/studies/new/", {"name": "new one", "sweep": sweep.pk, "mode": "both",
                                             "ratings_per_item": 2, "gold_enabled": "on", "items_per_panelist": 5})
    assert response.status_code == 302
    study = sweep.studies.get()
    assert study.items_per_panelist == 5 and study.ratings_per_item == 2
    assert [c.key for c in study.criteria.all()] == ["prompt_accuracy", "photorealism", "text_rendering"]
    client.post(f"/studies/{study.pk}/criteria/", {"key": "aesthetics", "name": "Aesthetics",
                                                   "question": "How beautiful is it?", "categories": "Art, Nature"})
    added = study.criteria.get(key="aesthetics")
    assert added.categories == ["Art", "Nature"]
    client.post(f"/studies/{study.pk}/status/open/")
    study.refresh_from_db()
    assert study.status == StudyStatus.OPEN


def test_admin_made_study_gets_default_criteria_and_items(client, admin_user):
    sweep, *_ = make_sweep(n_models=2, n_prompts=2)
    client.force_login(admin_user)
    response = client.post("/admin/ratings/study/add/", {
        "name": "from admin", "sweep": sweep.pk, "mode": "single", "ratings_per_item": 3, "gold_enabled": "on",
        "gold_share": "0.1", "instructions": "", "status": "draft", "assignment_strategy": "balanced",
        "assignment_timeout_minutes": 15, "items_per_panelist": 0, "share_token": "", "share_max_panelists": 200,
        "criteria-TOTAL_FORMS": 0, "criteria-INITIAL_FORMS": 0, "criteria-MIN_NUM_FORMS": 0,
        "criteria-MAX_NUM_FORMS": 1000,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    study = sweep.studies.get()
    assert [c.key for c in study.criteria.all()] == ["prompt_accuracy", "photorealism", "text_rendering"]
    assert study.items.count() == 4


def test_staff_create_refuses_bad_input_and_creates_nothing(client, admin_user):
    sweep, *_ = make_sweep(n_models=1, n_prompts=2)
    client.force_login(admin_user)
    bad_k = client.post("/studies/new/", {"name": "x", "sweep": sweep.pk, "mode": "single", "ratings_per_item": 0})
    assert bad_k.status_code == 400
    one_model = client.post("/studies/new/", {"name": "x", "sweep": sweep.pk, "mode": "pair", "ratings_per_item": 3})
    assert one_model.status_code == 400
    assert b"at least two models" in one_model.content
    assert not sweep.studies.exists()


@pytest.mark.django_db
def test_sweep_page_lists_its_studies_and_starts_a_new_one_with_the_sweep_chosen(client, django_user_model):
    sweep, *_ = make_sweep(n_models=2, n_prompts=2)
    study = services.study_create(sweep=sweep, name="Round one", mode="single", ratings_per_item=1)
    client.force_login(staff_user("staff-s", roles=("Sweep runners", "Study managers")))
    page = client.get(f"/sweeps/{sweep.pk}/").content.decode()
    assert f'href="/studies/{study.pk}/"' in page and "Round one" in page
    assert f'href="/studies/new/?sweep={sweep.pk}"' in page
    form = client.get(f"/studies/new/?sweep={sweep.pk}").content.decode()
    assert f'<option value="{sweep.pk}" selected>' in form
