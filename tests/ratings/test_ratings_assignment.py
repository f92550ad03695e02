"""The assignment service: coverage order, the no-repeat rules, balance, timeouts, completion, gold."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from ratings import services
from ratings.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    AssignmentStrategy,
    Rating,
    StudyItem,
)
from ratings.quality import panelist_quality
from ratings.selectors import criteria_for_prompt, study_progress
from tests.factories import PromptFactory, make_sweep

pytestmark = pytest.mark.django_db


def answer(assignment, panelist, value=5, prompt_accuracy=None):
    criteria = criteria_for_prompt(study=assignment.study, prompt=assignment.shown_prompt)
    gens = [assignment.left_id] + ([assignment.right_id] if assignment.right_id else [])
    scores = {(g, c.pk): (prompt_accuracy if (prompt_accuracy and c.key == "prompt_accuracy") else value)
              for g in gens for c in criteria}
    return services.assignment_submit(assignment_id=assignment.pk, panelist=panelist, scores=scores)


def run_panel(study, n_panelists):
    panelists = [services.panelist_create(study=study) for _ in range(n_panelists)]
    active = list(panelists)
    while active:
        for p in list(active):
            a = services.assignment_next(panelist=p)
            if a is None:
                active.remove(p)
            else:
                answer(a, p)
    return panelists


def test_default_criteria_and_applicability():
    sweep, models, prompts, gens = make_sweep(n_prompts=3, text_prompts=1)
    study = services.study_create(sweep=sweep, name="c")
    keys = [c.key for c in study.criteria.all()]
    assert keys == ["prompt_accuracy", "photorealism", "text_rendering"]
    text_prompt, plain = prompts[0], prompts[1]
    assert [c.key for c in criteria_for_prompt(study=study, prompt=text_prompt)] == keys
    assert [c.key for c in criteria_for_prompt(study=study, prompt=plain)] == ["prompt_accuracy", "photorealism"]
    typography = PromptFactory(suite=sweep.suite, category="Typography", expected_text="")
    assert "text_rendering" in [c.key for c in criteria_for_prompt(study=study, prompt=typography)]
    services.criterion_save(study=study, key="anatomy", name="Anatomy", question="Are hands right?",
                            categories=["people"])
    people = PromptFactory(suite=sweep.suite, category="People")
    assert "anatomy" in [c.key for c in criteria_for_prompt(study=study, prompt=people)]
    assert "anatomy" not in [c.key for c in criteria_for_prompt(study=study, prompt=plain)]


def test_study_items_singles_and_all_model_pairs():
    sweep, models, prompts, gens = make_sweep(n_models=3, n_prompts=2, seeds=(0, 1))
    study = services.study_create(sweep=sweep, name="items", mode="both")
    kinds = Counter(StudyItem.objects.filter(study=study).values_list("kind", flat=True))
    assert kinds == {"single": 12, "pair": 2 * 2 * 3}
    for item in StudyItem.objects.filter(study=study, kind="pair").select_related("first", "second"):
        assert item.first.prompt_id == item.second.prompt_id and item.first.seed == item.second.seed
        assert item.first.model_id != item.second.model_id
    assert services.study_items_sync(study=study) == 0  # idempotent


def test_pairs_need_two_models():
    sweep, *_ = make_sweep(n_models=1)
    with pytest.raises(services.StudySetupError, match="two models"):
        services.study_create(sweep=sweep, name="x", mode="pair")
    services.study_create(sweep=sweep, name="x", mode="single")


def test_cannot_open_without_images():
    sweep, *_ = make_sweep(n_models=2, n_prompts=0)
    study = services.study_create(sweep=sweep, name="empty")
    with pytest.raises(services.StudySetupError, match="Nothing to rate"):
        services.study_open(study=study)


def test_panel_completes_study_with_exactly_k_and_rules_hold():
    sweep, models, prompts, gens = make_sweep(n_models=3, n_prompts=4)
    study = services.study_create(sweep=sweep, name="full", mode="both", ratings_per_item=2, gold_enabled=False)
    services.study_open(study=study)
    panelists = run_panel(study, 12)
    progress = study_progress(study=study)
    assert progress["complete"], progress
    for item in StudyItem.objects.filter(study=study):
        assert item.n_done == item.target == 2
        assert item.assignments.filter(status=AssignmentStatus.DONE).count() == 2
    for p in panelists:
        seq = list(Assignment.objects.filter(panelist=p).order_by("created_at", "id"))
        shown = [g for a in seq for g in (a.left_id, a.right_id) if g]
        assert len(shown) == len(set(shown)), "an image was shown twice to one panelist"
        prompts_seq = [a.shown_prompt_id for a in seq]
        assert all(a != b for a, b in zip(prompts_seq, prompts_seq[1:], strict=False)), "same prompt twice in a row"
    per_item = Counter(Rating.objects.values_list("assignment_id", "generation_id", "criterion_id"))
    assert max(per_item.values()) == 1


def test_fewest_ratings_first():
    sweep, *_ = make_sweep(n_models=2, n_prompts=3)
    study = services.study_create(sweep=sweep, name="f", mode="single", ratings_per_item=3, gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    rated = set()
    for _ in range(3):
        a = services.assignment_next(panelist=p)
        rated.add(a.item_id)
        answer(a, p)
    # The next panelists get the three untouched items before any rated one.
    for _ in range(3):
        q = services.panelist_create(study=study)
        a = services.assignment_next(panelist=q)
        assert a.item_id not in rated
        assert StudyItem.objects.get(pk=a.item_id).n_assigned == 1  # it was at 0


def test_pairs_balanced_across_model_pairs_and_sides_randomised():
    sweep, models, *_ = make_sweep(n_models=4, n_prompts=6)
    study = services.study_create(sweep=sweep, name="p", mode="pair", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    # Balance is kept over the study, not over each sequence (issue 12: a rotation told the model):
    # groups are drawn at random, weighted by their free slots, so a full study has every pair's items.
    drawn = []
    left_first = 0
    for _ in range(36):  # 6 prompts x 6 model pairs, k = 1
        p = services.panelist_create(study=study)
        a = services.assignment_next(panelist=p)
        drawn.append(a.item.model_pair)
        left_first += a.left_id == a.item.first_id
        answer(a, p)
    counts = Counter(drawn)
    assert len(counts) == 6 and set(counts.values()) == {6}, counts  # 6 model pairs, each fully rated
    assert services.assignment_next(panelist=services.panelist_create(study=study)) is None
    assert 6 < left_first < 30


def test_timeout_returns_item_to_pool():
    sweep, *_ = make_sweep(n_models=1, n_prompts=1)
    study = services.study_create(sweep=sweep, name="t", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    slow, fast = services.panelist_create(study=study), services.panelist_create(study=study)
    a = services.assignment_next(panelist=slow)
    assert services.assignment_next(panelist=fast) is None  # the only item is taken
    later = timezone.now() + timedelta(minutes=study.assignment_timeout_minutes + 1)
    b = services.assignment_next(panelist=fast, now=later)
    assert b is not None and b.left_id == a.left_id
    a.refresh_from_db()
    assert a.status == AssignmentStatus.EXPIRED
    with pytest.raises(services.ItemExpired):
        answer(a, slow)
    answer(b, fast)
    assert StudyItem.objects.get().n_done == 1


def test_resume_same_open_assignment_and_one_open_per_panelist():
    sweep, *_ = make_sweep()
    study = services.study_create(sweep=sweep, name="r", gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    assert services.assignment_next(panelist=p).pk == a.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(study=study, panelist=p, kind=AssignmentKind.SINGLE, left_id=a.left_id,
                                  shown_prompt_id=a.shown_prompt_id, expires_at=a.expires_at)


def test_database_refuses_more_than_k():
    sweep, *_ = make_sweep(n_models=1, n_prompts=1)
    study = services.study_create(sweep=sweep, name="k", mode="single", ratings_per_item=1)
    item = StudyItem.objects.get(study=study)
    with pytest.raises(IntegrityError), transaction.atomic():
        StudyItem.objects.filter(pk=item.pk).update(n_assigned=2)


def test_database_refuses_bad_score_and_duplicate_rating():
    sweep, *_ = make_sweep()
    study = services.study_create(sweep=sweep, name="db", gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    [first, *_] = answer(a, p)
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(assignment=a, generation_id=first.generation_id, criterion_id=first.criterion_id,
                              panelist=p, study=study, score=4)
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.filter(pk=first.pk).update(score=11)


def test_service_refusals():
    sweep, *_ = make_sweep()
    study = services.study_create(sweep=sweep, name="s", gold_enabled=False)
    p = services.panelist_create(study=study)
    with pytest.raises(services.StudyNotOpen):
        services.assignment_next(panelist=p)
    services.study_open(study=study)
    a = services.assignment_next(panelist=p)
    criteria = criteria_for_prompt(study=study, prompt=a.shown_prompt)
    gen = a.left_id
    full = {(g, c.pk): 5 for g in ([a.left_id] + ([a.right_id] if a.right_id else [])) for c in criteria}
    for bad in (0, 11, True, 5.5, "x"):
        with pytest.raises(services.InvalidScores):
            services.assignment_submit(assignment_id=a.pk, panelist=p, scores={**full, (gen, criteria[0].pk): bad})
    other_gen = next(g.pk for g in sweep.generations.all() if g.pk not in (a.left_id, a.right_id))
    with pytest.raises(services.NotAssigned):
        services.assignment_submit(assignment_id=a.pk, panelist=p, scores={**full, (other_gen, criteria[0].pk): 5})
    other_study = services.study_create(sweep=sweep, name="other")
    foreign = other_study.criteria.first()
    with pytest.raises(services.InvalidScores, match="not part of this study"):
        services.assignment_submit(assignment_id=a.pk, panelist=p, scores={**full, (gen, foreign.pk): 5})
    q = services.panelist_create(study=study)
    with pytest.raises(services.NotAssigned):
        services.assignment_submit(assignment_id=a.pk, panelist=q, scores=full)
    assert not Rating.objects.exists()
    services.assignment_submit(assignment_id=a.pk, panelist=p, scores=full)
    with pytest.raises(services.AlreadyAnswered):
        services.assignment_submit(assignment_id=a.pk, panelist=p, scores=full)
    assert Rating.objects.count() == len(full)


def test_a_criterion_that_does_not_apply_to_the_prompt_is_refused():
    """Text rendering is scored only on prompts that ask for text: a sweep without any text prompt
    hands out only such items, so the refusal is checked on every run (no conditional)."""
    sweep, *_ = make_sweep(n_models=2, n_prompts=2, text_prompts=0)
    study = services.study_create(sweep=sweep, name="no text", mode="single", gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    assert a.shown_prompt.expected_text == ""
    criteria = criteria_for_prompt(study=study, prompt=a.shown_prompt)
    text = study.criteria.get(key="text_rendering")
    assert text not in criteria
    full = {(a.left_id, c.pk): 5 for c in criteria}
    with pytest.raises(services.InvalidScores, match="does not apply"):
        services.assignment_submit(assignment_id=a.pk, panelist=p, scores={**full, (a.left_id, text.pk): 5})
    assert not Rating.objects.exists()
    assert len(services.assignment_submit(assignment_id=a.pk, panelist=p, scores=full)) == len(criteria)


def test_skip_returns_slot_but_not_to_same_panelist():
    sweep, *_ = make_sweep(n_models=1, n_prompts=2)
    study = services.study_create(sweep=sweep, name="sk", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    services.assignment_skip(assignment_id=a.pk, panelist=p, reason="offensive")
    assert StudyItem.objects.get(pk=a.item_id).n_assigned == 0
    b = services.assignment_next(panelist=p)
    assert b.left_id != a.left_id
    q = services.panelist_create(study=study)
    assert services.assignment_next(panelist=q).left_id == a.left_id


def test_quota_limits_items_per_panelist():
    sweep, *_ = make_sweep(n_models=3, n_prompts=4)
    study = services.study_create(sweep=sweep, name="q", mode="single", gold_enabled=False)
    study.items_per_panelist = 3
    study.save()
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    for _ in range(3):
        answer(services.assignment_next(panelist=p), p)
    assert services.assignment_next(panelist=p) is None


def test_gold_items_flag_careless_panelists():
    sweep, *_ = make_sweep(n_models=2, n_prompts=10, text_prompts=0)
    study = services.study_create(sweep=sweep, name="g", mode="single", ratings_per_item=3)
    study.gold_share = 0.3
    study.save()
    services.study_open(study=study)
    careful, careless = services.panelist_create(study=study), services.panelist_create(study=study)
    for p, gold_score in ((careful, 1), (careless, 9)):
        while (a := services.assignment_next(panelist=p)) is not None:
            if a.is_gold:
                assert a.shown_prompt_id != a.left.prompt_id and a.item_id is None
                answer(a, p, value=5, prompt_accuracy=gold_score)
            else:
                answer(a, p, value=5)
    assert Assignment.objects.filter(is_gold=True, panelist=careful).exists()
    assert Assignment.objects.filter(is_gold=True, panelist=careless).exists()
    quality = {q.panelist.pk: q for q in panelist_quality(study=study)}
    assert quality[careful.pk].gold_pass_rate == 1.0 and not quality[careful.pk].flagged
    assert quality[careless.pk].gold_pass_rate == 0.0 and quality[careless.pk].flagged
    assert quality[careful.pk].agreement_n > 0
    # Gold answers never count toward an image's k.
    assert sum(StudyItem.objects.filter(study=study).values_list("n_done", flat=True)) == Assignment.objects.filter(
        study=study, is_gold=False, status=AssignmentStatus.DONE).count()


def test_active_strategy_goes_through_pick_active_item(monkeypatch):
    import ratings.active

    sweep, *_ = make_sweep(n_models=3, n_prompts=3)
    study = services.study_create(sweep=sweep, name="a", mode="both", gold_enabled=False)
    study.assignment_strategy = AssignmentStrategy.ACTIVE
    study.save()
    services.study_open(study=study)
    seen = []
    real = ratings.active.pick_active_item

    def spy(*, study, panelist, candidates):
        seen.append(candidates)
        return real(study=study, panelist=panelist, candidates=candidates)

    monkeypatch.setattr(ratings.active, "pick_active_item", spy)
    p = services.panelist_create(study=study)
    a = services.assignment_next(panelist=p)
    assert seen and a is not None
    chosen = tuple(sorted(g for g in (a.left_id, a.right_id) if g))
    assert chosen in {tuple(sorted(c.generation_ids)) for c in seen[0]}


def test_commands_create_study_and_invite_link(capsys, settings):
    settings.SITE_URL = "https://rate.example.org"
    sweep, *_ = make_sweep()
    call_command("create_study", "--sweep", str(sweep.pk), "--name", "cli", "--mode", "pair",
                 "--ratings-per-image", "5")
    study_id = int(capsys.readouterr().out.strip())
    study = sweep.studies.get(pk=study_id)
    assert study.mode == "pair" and study.ratings_per_item == 5
    call_command("invite_link", "--study", str(study_id))
    url = capsys.readouterr().out.strip()
    token = study.panelists.get().token
    assert url == f"https://rate.example.org/r/{token}/"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No sweep"):
        call_command("create_study", "--sweep", "999999", "--name", "x")
    with pytest.raises(CommandError, match="No study"):
        call_command("invite_link", "--study", "999999")


def test_own_timed_out_item_is_replaced_and_its_slot_freed():
    sweep, *_ = make_sweep(n_models=2, n_prompts=3)
    study = services.study_create(sweep=sweep, name="own", mode="single", ratings_per_item=1, gold_enabled=False)
    services.study_open(study=study)
    p = services.panelist_create(study=study)
    old = services.assignment_next(panelist=p)
    later = timezone.now() + timedelta(minutes=study.assignment_timeout_minutes + 1)
    new = services.assignment_next(panelist=p, now=later)
    old.refresh_from_db()
    assert new.pk != old.pk and old.status == AssignmentStatus.EXPIRED
    assert new.left_id != old.left_id  # seen once is seen
    assert StudyItem.objects.get(pk=old.item_id).n_assigned == 0
    assert Assignment.objects.filter(panelist=p, status=AssignmentStatus.OPEN).count() == 1
