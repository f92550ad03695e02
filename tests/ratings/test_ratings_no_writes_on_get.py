"""No writes on GET: items follow the sweep when images are added (enqueued after commit), not when a
page is looked at."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation.models import Sweep
from generation.signals import sweep_images_added
from ratings import services
from ratings.models import StudyItem
from tests.factories import GenerationFactory, make_sweep, staff_user

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_images_added_to_a_sweep_become_items_after_commit(settings, django_capture_on_commit_callbacks):
    from evalsite.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the enqueued task runs here, for real
    app.conf.task_always_eager = True  # the app read its settings long before this test
    try:
        _images_become_items(django_capture_on_commit_callbacks)
    finally:
        app.conf.task_always_eager = False


def _images_become_items(django_capture_on_commit_callbacks):
    sweep, models, prompts, _ = make_sweep(n_models=2, n_prompts=2)
    study = services.study_create(sweep=sweep, name="grows", mode="single", ratings_per_item=1)
    services.study_open(study=study)
    before = StudyItem.objects.filter(study=study).count()
    new = GenerationFactory(sweep=sweep, prompt=prompts[0], model=models[0], seed=7, image="g/new.png")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sweep_images_added.send(sender=Sweep, sweep_id=sweep.pk)
    assert StudyItem.objects.filter(study=study).count() == before  # nothing before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    assert StudyItem.objects.filter(study=study, first=new).count() == 1
    services.study_close(study=study)
    GenerationFactory(sweep=sweep, prompt=prompts[1], model=models[0], seed=8, image="g/late.png")
    with django_capture_on_commit_callbacks(execute=True):
        sweep_images_added.send(sender=Sweep, sweep_id=sweep.pk)
    assert StudyItem.objects.filter(study=study).count() == before + 1  # a closed study keeps its items


def test_dashboard_and_a_panelist_with_nothing_left_write_no_items(client, settings):
    sweep, models, prompts, _ = make_sweep(n_models=1, n_prompts=1)
    study = services.study_create(sweep=sweep, name="done", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    # rendered after the study opened, and no worker signal yet: no item exists for it
    GenerationFactory(sweep=sweep, prompt=prompts[0], model=models[0], seed=5, image="g/unsynced.png")
    panelist = services.panelist_create(study=study)
    services.panelist_consent(panelist=panelist)
    first = services.assignment_next(panelist=panelist)
    services.assignment_skip(assignment_id=first.pk, panelist=panelist, reason="did not load")
    n_items = StudyItem.objects.filter(study=study).count()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/r/{panelist.token}/")
    assert response.status_code == 200
    assert not [q for q in _writes(queries.captured_queries) if StudyItem._meta.db_table in q]
    client.force_login(staff_user("manager", roles=("Study managers",)))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/studies/{study.pk}/").status_code == 200
    assert _writes(queries.captured_queries) == [] or all(
        "django_session" in q for q in _writes(queries.captured_queries))
    assert StudyItem.objects.filter(study=study).count() == n_items
