"""Changing one's last answers ("previous"): scores replaced, history kept, every integrity rule held."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ratings import services
from ratings.models import Assignment, AssignmentStatus, Rating, RatingChange, StudyItem, StudyStatus
from ratings.selectors import CHANGE_LAST, criteria_for_prompt, panelist_changeable
from tests.factories import make_sweep

pytestmark = pytest.mark.django_db


def _answers(assignment, score):
    sides = ["single"] if assignment.kind == "single" else ["left", "right"]
    criteria = criteria_for_prompt(study=assignment.study, prompt=assignment.shown_prompt)
    return {(side, c.key): score for side in sides for c in criteria}


@pytest.fixture
def answered():
    sweep, *_ = make_sweep(n_models=3, n_prompts=4)
    study = services.study_create(sweep=sweep, name="change", mode="both", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    done = []
    for _ in range(CHANGE_LAST + 1):
        a = services.assignment_next(panelist=panelist)
        services.assignment_submit_sides(assignment_id=a.pk, panelist=panelist, answers=_answers(a, 4))
        done.append(a)
    return study, panelist, done


def test_change_replaces_scores_and_keeps_history(answered):
    study, panelist, done = answered
    newest = done[-1]
    assert panelist_changeable(panelist=panelist, now=timezone.now())[0] == newest.pk
    before_items = list(StudyItem.objects.filter(study=study).values_list("id", "n_assigned", "n_done"))
    n_ratings = Rating.objects.filter(panelist=panelist).count()
    services.assignment_change_sides(assignment_id=newest.pk, panelist=panelist, answers=_answers(newest, 9))
    ratings = Rating.objects.filter(assignment=newest)
    assert set(ratings.values_list("score", flat=True)) == {9}
    assert Rating.objects.filter(panelist=panelist).count() == n_ratings  # replaced, not added: no duplicates
    history = RatingChange.objects.filter(rating__assignment=newest)
    assert history.count() == ratings.count() and set(history.values_list("score", flat=True)) == {4}
    # Counted once, when first answered: no item goes past k, nothing is handed out again.
    assert list(StudyItem.objects.filter(study=study).values_list("id", "n_assigned", "n_done")) == before_items
    assert all(n_assigned <= 1 for _, n_assigned, _ in before_items)
    # Changing it again keeps both earlier scores.
    services.assignment_change_sides(assignment_id=newest.pk, panelist=panelist, answers=_answers(newest, 2))
    assert sorted(set(RatingChange.objects.filter(rating__assignment=newest).values_list("score", flat=True))) == [4, 9]


def test_only_the_last_answers_of_this_sitting_can_change(answered):
    study, panelist, done = answered
    oldest = done[0]  # one further back than CHANGE_LAST
    with pytest.raises(services.AnswerLocked):
        services.assignment_change_sides(assignment_id=oldest.pk, panelist=panelist, answers=_answers(oldest, 9))
    later = timezone.now() + timedelta(hours=2)
    with pytest.raises(services.AnswerLocked):
        services.assignment_change_sides(assignment_id=done[-1].pk, panelist=panelist,
                                         answers=_answers(done[-1], 9), now=later)
    other = services.panelist_create(study=study)
    with pytest.raises(services.NotAssigned):
        services.assignment_change_sides(assignment_id=done[-1].pk, panelist=other, answers=_answers(done[-1], 9))
    with pytest.raises(services.InvalidScores):
        services.assignment_change_sides(assignment_id=done[-1].pk, panelist=panelist,
                                         answers={**_answers(done[-1], 9), next(iter(_answers(done[-1], 9))): 11})
    assert not RatingChange.objects.exists() and set(Rating.objects.values_list("score", flat=True)) == {4}
    # A skip cannot be turned into an answer (its slot went back to the pool).
    open_now = services.assignment_next(panelist=panelist)
    services.assignment_skip(assignment_id=open_now.pk, panelist=panelist, reason="The image did not load")
    with pytest.raises(services.AnswerLocked):
        services.assignment_change_sides(assignment_id=open_now.pk, panelist=panelist, answers=_answers(open_now, 9))
    assert Assignment.objects.get(pk=open_now.pk).status == AssignmentStatus.SKIPPED
    study.status = StudyStatus.CLOSED
    study.save(update_fields=["status"])
    panelist.refresh_from_db()
    with pytest.raises(services.StudyNotOpen):
        services.assignment_change_sides(assignment_id=done[-1].pk, panelist=panelist, answers=_answers(done[-1], 9))


def test_change_page_shows_saved_scores_and_posts_the_change(answered, client):
    _study, panelist, done = answered
    newest = done[-1]
    page = client.get(f"/r/{panelist.token}/a/{newest.ref}/change/").content.decode()
    assert "Changing your answer 1 of 3" in page and 'value="4" required checked' in page
    assert client.get(f"/r/{panelist.token}/a/{done[0].ref}/change/").status_code == 409
    fields = {f"{side}-{key}": "7" for side, key in _answers(newest, 7)}
    response = client.post(f"/r/{panelist.token}/a/{newest.ref}/change/", fields)
    assert response.status_code == 302
    assert set(Rating.objects.filter(assignment=newest).values_list("score", flat=True)) == {7}


def test_progress_total_never_shrinks_and_matches_the_dashboard(answered):
    from ratings.quality import panelist_quality
    from ratings.selectors import panelist_progress

    study, panelist, done = answered
    first = panelist_progress(panelist=panelist)
    assert first["m"] == panelist.planned_items >= len(done) and first["about"]  # no quota: "about m"
    a = services.assignment_next(panelist=panelist)
    services.assignment_skip(assignment_id=a.pk, panelist=panelist, reason="I cannot judge this one")
    other = services.panelist_create(study=study)  # someone else takes what is left
    services.panelist_consent(panelist=other)
    while (b := services.assignment_next(panelist=other)) is not None:
        services.assignment_submit_sides(assignment_id=b.pk, panelist=other, answers=_answers(b, 5))
    panelist.refresh_from_db()
    now = panelist_progress(panelist=panelist)
    assert now["m"] == first["m"] and (now["answered"], now["skipped"]) == (len(done), 1)
    row = next(q for q in panelist_quality(study=study) if q.panelist.pk == panelist.pk)
    assert (row.done, row.skipped) == (now["answered"], now["skipped"])
