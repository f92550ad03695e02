"""Concurrency on real PostgreSQL: threads race for items and submit the same answer at once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from ratings import services
from ratings.models import Assignment, AssignmentStatus, Rating, StudyItem
from ratings.selectors import criteria_for_prompt
from tests.factories import make_sweep

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _in_thread(fn, n):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _full_scores(assignment):
    criteria = criteria_for_prompt(study=assignment.study, prompt=assignment.shown_prompt)
    gens = [assignment.left_id] + ([assignment.right_id] if assignment.right_id else [])
    return {(g, c.pk): 6 for g in gens for c in criteria}


def test_uses_select_for_update_skip_locked():
    assert connection.vendor == "postgresql"
    assert connection.features.has_select_for_update_skip_locked


def test_racing_panelists_never_push_an_item_past_k():
    sweep, *_ = make_sweep(n_models=3, n_prompts=4)
    study = services.study_create(sweep=sweep, name="race", mode="both", ratings_per_item=2, gold_enabled=False)
    services.study_open(study=study)
    panelists = [services.panelist_create(study=study) for _ in range(16)]

    def work(i):
        p = panelists[i]
        answered = 0
        while True:
            a = services.assignment_next(panelist=p)
            if a is None:
                return answered
            services.assignment_submit(assignment_id=a.pk, panelist=p, scores=_full_scores(a))
            answered += 1

    results = _in_thread(work, len(panelists))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    for item in StudyItem.objects.filter(study=study):
        done = Assignment.objects.filter(item=item, status=AssignmentStatus.DONE).count()
        assert done == item.n_done <= 2
        assert item.n_assigned == item.n_done
    assert sum(results) == Assignment.objects.filter(study=study, status=AssignmentStatus.DONE).count()
    cells = Counter(Rating.objects.values_list("assignment_id", "generation_id", "criterion_id"))
    assert cells and max(cells.values()) == 1


def test_same_answer_submitted_concurrently_is_saved_once():
    sweep, *_ = make_sweep()
    study = services.study_create(sweep=sweep, name="dup", gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    scores = _full_scores(a)

    results = _in_thread(lambda i: services.assignment_submit(assignment_id=a.pk, panelist=p, scores=scores), 8)
    saved = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, services.AlreadyAnswered)]
    assert len(saved) == 1 and len(refused) == 7, results
    assert Rating.objects.filter(assignment=a).count() == len(scores)
    assert StudyItem.objects.get(pk=a.item_id).n_done == 1


def test_same_panelist_asking_twice_at_once_gets_one_open_item():
    sweep, *_ = make_sweep()
    study = services.study_create(sweep=sweep, name="twice", gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    results = _in_thread(lambda i: services.assignment_next(panelist=p), 6)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.pk for r in results}) == 1
    assert Assignment.objects.filter(panelist=p, status=AssignmentStatus.OPEN).count() == 1
    assert sum(StudyItem.objects.filter(study=study).values_list("n_assigned", flat=True)) == 1
