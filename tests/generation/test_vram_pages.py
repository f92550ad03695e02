"""The staff model pages of issue 14: "Will it fit my card?" from the latest profile, and the button that queues a
profile on a GPU worker (the sweep runners' permission; no writes on GET)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import VramProfile
from tests.factories import ImageModelFactory, staff_user, vram_report

NO_GPU = "profile_vram needs a CUDA GPU: this machine has none, so there is no VRAM to profile"

pytestmark = pytest.mark.django_db


@pytest.fixture
def runner(client):
    client.force_login(staff_user("runner", roles=("Sweep runners",)))
    return client


def test_a_model_without_a_profile_says_not_profiled_and_offers_the_button(runner):
    model = ImageModelFactory(name="FLUX.1 [dev]")
    html = runner.get(reverse("generation:model_detail", args=[model.pk])).content.decode()
    assert "<strong>Min VRAM:</strong> <span class=\"muted\">not profiled</span>" in html
    assert 'id="profile-button"' in html and "Profile VRAM on a GPU worker" in html
    assert f"profile_vram --model {model.slug}" in html
    listing = runner.get(reverse("generation:model_list")).content.decode()
    assert "FLUX.1 [dev]" in listing and "not profiled" in listing and "never" in listing
    assert not VramProfile.objects.exists()  # GET writes nothing


def test_the_button_queues_a_profile_that_a_cpu_worker_fails_cleanly(runner, tiny_models, eager,
                                                                   django_capture_on_commit_callbacks):
    """POST -> a queued row, the task sent after commit; the eager Celery app runs the real task here (a CPU), so
    the newest profile ends failed with NoGPU's message and the page shows it."""
    model = tiny_models["tiny-flux"]
    url = reverse("generation:model_vram_profile", args=[model.pk])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = runner.post(url, {"cards": "24,8"})
    assert response.status_code == 302 and response["Location"] == reverse("generation:model_detail", args=[model.pk])
    profile = VramProfile.objects.get()
    assert (profile.status, profile.cards, profile.requested_by.username) == ("queued", [8, 24], "runner")
    page = runner.get(reverse("generation:model_detail", args=[model.pk])).content.decode()
    assert 'data-state="queued"' in page and "waiting for a GPU worker" in page and 'hx-trigger="every 5s"' in page
    assert len(callbacks) == 1
    callbacks[0]()  # the commit: the task is sent and (eager) runs
    profile.refresh_from_db()
    assert profile.status == "failed" and profile.error == NO_GPU
    page = runner.get(reverse("generation:model_detail", args=[model.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert page.lstrip().startswith('<section class="card" id="vram-profile"')  # the htmx partial
    assert 'data-state="failed"' in page and NO_GPU in page and "hx-trigger" not in page


def test_bad_cards_are_refused_with_the_reason(runner):
    model = ImageModelFactory()
    response = runner.post(reverse("generation:model_vram_profile", args=[model.pk]), {"cards": "8,huge"})
    assert response.status_code == 400
    assert "card &#x27;huge&#x27; is not a number of GB" in response.content.decode()
    assert not VramProfile.objects.exists()


def test_study_managers_see_the_page_but_may_not_profile(client):
    model = ImageModelFactory()
    client.force_login(staff_user("manager", roles=("Study managers",)))
    html = client.get(reverse("generation:model_detail", args=[model.pk])).content.decode()
    assert "Will it fit my card?" in html and 'id="profile-button"' not in html
    assert client.post(reverse("generation:model_vram_profile", args=[model.pk]), {"cards": "8"}).status_code == 403
    assert client.get(reverse("generation:model_vram_profile", args=[model.pk])).status_code in (403, 405)
    assert not VramProfile.objects.exists()


def test_a_done_profile_shows_min_vram_and_the_fits_on_table(runner):
    from django.utils import timezone

    model = ImageModelFactory()
    VramProfile.objects.create(image_model=model, status="done", report=vram_report(), cards=[8, 24, 48],
                               gpu_name="NVIDIA H200", finished_at=timezone.now())
    html = runner.get(reverse("generation:model_detail", args=[model.pk])).content.decode()
    assert "<strong>Min VRAM:</strong> 24 GB with nf4" in html
    table = html[html.index('<table id="fits-on">'):]
    table = table[:table.index("</table>")]
    assert '<th scope="row" class="num">8 GB</th><td colspan="4" class="muted">does not fit</td>' in table
    assert ('<th scope="row" class="num">24 GB</th><td>nf4</td><td class="num">5.42</td><td class="num">6.70</td>'
            in table)
    assert "24 GB <small class=\"muted\">nf4</small>" in runner.get(reverse("generation:model_list")).content.decode()
