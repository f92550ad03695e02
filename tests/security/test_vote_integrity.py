"""Issue 12 (7): an answer's fields come once, and the time per item is the server's measurement."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from ratings import services
from ratings.models import Assignment, AssignmentStatus, Rating
from tests.factories import make_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def item_page(client):
    sweep, *_ = make_sweep(n_models=2, n_prompts=3)
    study = services.study_create(sweep=sweep, name="votes", mode="single", gold_enabled=False)
    services.study_open(study=study)
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    html = client.get(f"/r/{panelist.token}/").content.decode()
    action = re.search(r'hx-post="(/r/[^"]+/a/[\w-]+/)"', html).group(1)
    fields = sorted(set(re.findall(r'type="radio" name="((?:single|left|right)-[\w-]+)"', html)))
    return panelist, action, fields




@pytest.mark.parametrize("second", ["7", "3"])
def test_a_score_sent_twice_is_refused_with_400_and_nothing_saved(client, item_page, second):
    panelist, action, fields = item_page
    from urllib.parse import urlencode

    body = urlencode([(f, "7") for f in fields] + [(fields[0], second)])
    response = client.post(action, body, content_type="application/x-www-form-urlencoded",
                           headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "sent 2 times" in response.content.decode()
    assert not Rating.objects.filter(panelist=panelist).exists()
    assert Assignment.objects.get(panelist=panelist).status == AssignmentStatus.OPEN


def test_any_field_twice_is_refused_too(client, item_page):
    panelist, action, fields = item_page
    from urllib.parse import urlencode

    body = urlencode([(f, "7") for f in fields] + [("elapsed_ms", "10"), ("elapsed_ms", "20")])
    response = client.post(action, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and not Rating.objects.filter(panelist=panelist).exists()
    skip = action + "skip/"
    body = urlencode([("reason", "other"), ("other", "a"), ("other", "b")])
    assert client.post(skip, body, content_type="application/x-www-form-urlencoded").status_code == 400
    assert Assignment.objects.get(panelist=panelist).status == AssignmentStatus.OPEN


def test_time_per_item_is_measured_on_the_server_and_the_client_figure_is_only_a_hint(client, item_page):
    panelist, action, fields = item_page
    response = client.post(action, {**{f: "7" for f in fields}, "elapsed_ms": "86399999"})
    assert response.status_code == 302
    done = Assignment.objects.get(panelist=panelist, status=AssignmentStatus.DONE)
    server = (done.answered_at - done.created_at).total_seconds() * 1000
    assert done.elapsed_ms == pytest.approx(server, abs=2)
    assert done.elapsed_ms < 60_000  # not the forged 86,399,999
    assert done.client_elapsed_ms is None  # contradicted by the server's clock: dropped


def test_a_plausible_client_figure_is_kept_as_a_hint_beside_the_server_time(item_page):
    panelist, _, _ = item_page
    assignment = services.assignment_next(panelist=panelist)
    from ratings.selectors import criteria_for_prompt

    scores = {(assignment.left_id, c.pk): 5 for c in criteria_for_prompt(study=panelist.study,
                                                                         prompt=assignment.shown_prompt)}
    services.assignment_submit(assignment_id=assignment.pk, panelist=panelist, scores=scores,
                               client_elapsed_ms=4100, now=assignment.created_at + timedelta(seconds=5))
    assignment.refresh_from_db()
    assert (assignment.elapsed_ms, assignment.client_elapsed_ms) == (5000, 4100)
