"""Real browser (Debian's Chromium via Playwright) against live_server: keyboard-only rating, staff set-up."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db.models import F

from ratings import services
from ratings.models import Assignment, AssignmentStatus, Rating, StudyItem, StudyStatus
from ratings.selectors import panelist_invite_url
from tests.factories import make_sweep

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_sync_orm_in_browser_tests")]

def _study(mode: str):
    sweep, *_ = make_sweep(n_models=3, n_prompts=3, text_prompts=1)
    study = services.study_create(sweep=sweep, name=f"browser {mode}", mode=mode, ratings_per_item=1,
                                  gold_enabled=False, instructions="Judge each picture on its own.")
    services.study_open(study=study)
    return study


def _rate_everything_by_keyboard(page, live_server, study) -> int:
    panelist = services.panelist_create(study=study)
    settings.SITE_URL = live_server.url
    page.goto(panelist_invite_url(panelist=panelist))
    page.keyboard.press("Enter")  # the consent button has focus
    page.wait_for_selector("#rating-item")
    items = 0
    while page.locator("form.rate-form").count():
        before = page.locator("#rating-item").get_attribute("data-assignment")
        n_scales = page.locator("fieldset.scale").count()
        assert page.locator("fieldset.scale legend").count() == n_scales
        for i in range(n_scales):
            page.keyboard.press(str((i % 9) + 1))
        assert page.evaluate("document.activeElement.classList.contains('save')"), "focus should reach Save"
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(b) => { const el = document.getElementById('rating-item');"
            " return el && el.getAttribute('data-assignment') !== b; }", arg=before)
        assert page.locator("#saved").inner_text().strip() == "Saved."
        items += 1
    assert "Thank you" in page.locator("#rating-item").inner_text()
    done = Assignment.objects.filter(panelist=panelist, status=AssignmentStatus.DONE)
    assert done.count() == items > 0
    assert Rating.objects.filter(panelist=panelist).count() >= items
    # It ends when nothing is left for this panelist: every free item without an image they
    # have seen is of the prompt they saw last (never the same prompt twice in a row), or none.
    seen = {g for a in done for g in (a.left_id, a.right_id) if g}
    last = done.order_by("-id").first().shown_prompt_id
    free = StudyItem.objects.filter(study=study, n_assigned__lt=F("target"))
    free = free.exclude(first_id__in=seen).exclude(second_id__in=seen)
    assert set(free.values_list("prompt_id", flat=True)) <= {last}
    return items


def test_panelist_rates_singles_with_keyboard_only(page, live_server):
    study = _study("single")
    assert _rate_everything_by_keyboard(page, live_server, study) >= 7  # 3 models x 3 prompts, each image once
    assert set(Assignment.objects.filter(study=study).values_list("kind", flat=True)) == {"single"}


def test_panelist_rates_pairs_with_keyboard_only(page, live_server):
    study = _study("pair")
    page.set_viewport_size({"width": 1280, "height": 1000})
    items = _rate_everything_by_keyboard(page, live_server, study)
    assert items == 3  # one pair per prompt: 3 images a prompt, none shown twice, prompts alternate
    assert set(Assignment.objects.filter(study=study).values_list("kind", flat=True)) == {"pair"}


def test_rating_page_fits_a_phone(page, live_server):
    study = _study("pair")
    page.set_viewport_size({"width": 390, "height": 844})
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    first = page.locator(".options label").first.bounding_box()
    assert first["height"] >= 36  # big enough to tap


def test_skip_with_reason_by_keyboard(page, live_server):
    study = _study("single")
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    before = page.locator("#rating-item").get_attribute("data-assignment")
    page.keyboard.press("s")  # opens the skip form on its first reason
    page.keyboard.press("Tab")  # the "Other" text field
    page.keyboard.press("Tab")  # the Skip button
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(b) => document.getElementById('rating-item').getAttribute('data-assignment') !== b", arg=before)
    skipped = Assignment.objects.get(ref=before)  # the page carries the opaque ref, not the id
    assert skipped.status == AssignmentStatus.SKIPPED and skipped.skip_reason == "The image did not load"


def test_staff_creates_and_opens_a_study(page, live_server, django_user_model):
    sweep, *_ = make_sweep(n_models=2, n_prompts=2)
    django_user_model.objects.create_superuser("staff", "staff@example.org", "correct-horse-battery")
    page.goto(f"{live_server.url}/admin/login/?next=/studies/new/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct-horse-battery")
    page.keyboard.press("Enter")
    page.wait_for_url("**/studies/new/")
    page.fill("#id_name", "Staff-made study")
    page.select_option("#id_sweep", str(sweep.pk))
    page.select_option("#id_mode", "both")
    page.fill("#id_ratings_per_item", "2")
    page.get_by_role("button", name="Create study").click()
    page.wait_for_selector("text=Rating progress")
    study = sweep.studies.get()
    assert study.status == StudyStatus.DRAFT and study.ratings_per_item == 2
    page.get_by_role("button", name="Open study").click()
    page.wait_for_selector("text=The study is open.")
    page.get_by_role("button", name="New invite link").click()
    link = page.locator("#invite-url").input_value()
    study.refresh_from_db()
    assert study.status == StudyStatus.OPEN
    assert link.endswith(f"/r/{study.panelists.get().token}/")
