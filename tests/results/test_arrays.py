"""ratings.arrays (dense codes and id lookups behind the board) and the median time per item."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from django.db import connection

from ratings.arrays import dense_codes, lookup, positions
from ratings.models import Assignment, AssignmentStatus, Panelist
from ratings.quality import group_medians, median_elapsed_ms
from ratings.results.services import ratings_simulate


@pytest.mark.parametrize("values", [
    np.array([7, 3, 3, 900, 7, 0]),  # ids of a modest range: the presence table
    np.array([5, 2**40, 5, 17]),  # a wide range: sorting
    np.array([-3, 4, -3]),  # negative: sorting
    np.array([2.5, 1.0, 2.5]),  # not integers: sorting
    np.array([], dtype=np.int64),
])
def test_dense_codes_equal_np_unique(values):
    uniq, inv = dense_codes(values)
    want_u, want_i = np.unique(values, return_inverse=True)
    assert uniq.tolist() == want_u.tolist() and inv.tolist() == want_i.reshape(-1).tolist()
    assert inv.dtype == np.int64


@pytest.mark.parametrize("keys, table", [
    (np.array([10, 11, 12, 10, 99]), np.array([12, 10, 11])),  # direct table
    (np.array([10, 2**40, 12]), np.array([2**40, 10])),  # sorted search
])
def test_lookup_maps_keys_and_fills_absent_ones(keys, table):
    values = np.arange(table.size) * 100 + 7
    got = lookup(keys, table, values, default=-1)
    want = [int(values[list(table).index(k)]) if k in table else -1 for k in keys.tolist()]
    assert got.tolist() == want and got.dtype == np.int64
    present = np.isin(keys, table)
    assert positions(keys[present], table).tolist() == [list(table).index(k) for k in keys[present].tolist()]


def test_lookup_of_empty_inputs():
    assert lookup(np.array([], dtype=np.int64), np.array([1]), np.array([2])).size == 0
    assert lookup(np.array([1, 2]), np.array([], dtype=np.int64), np.array([], dtype=np.int64), default=5).tolist() == [5, 5]


@pytest.mark.django_db
def test_median_time_per_item_is_the_median_of_each_panelists_answers(study_factory):
    """The grouped query (PostgreSQL's percentile_cont) or group_medians (SQLite): the same medians."""
    study, _, _ = study_factory(n_models=3, n_prompts=6, k=2)
    ratings_simulate(study=study, panelists=5, seed=4)
    answers = Assignment.objects.filter(study=study, status=AssignmentStatus.DONE)
    rng = np.random.default_rng(1)
    for a in answers:  # an even count of answers for some: the mean of the two middle values
        a.elapsed_ms = int(rng.integers(500, 60_000))
        a.save(update_fields=["elapsed_ms"])
    answers.filter(pk=answers.first().pk).update(elapsed_ms=None)  # no time recorded: not counted
    idle = Panelist.objects.create(study=study, pseudonym="idle", token="idle-token")
    ids = np.array(list(Panelist.objects.filter(study=study).order_by("id").values_list("id", flat=True)))
    got = median_elapsed_ms(study=study, panelist_ids=ids)
    want = []
    for pid in ids.tolist():
        times = list(answers.filter(panelist_id=pid, elapsed_ms__isnull=False).values_list("elapsed_ms", flat=True))
        want.append(statistics.median(times) if times else np.nan)
    assert np.allclose(got, want, equal_nan=True), connection.vendor
    assert np.isnan(got[ids.tolist().index(idle.pk)])
    timed = np.array(list(answers.filter(elapsed_ms__isnull=False).values_list("panelist_id", "elapsed_ms")))
    assert np.array_equal(got, group_medians(keys=positions(timed[:, 0], ids), values=timed[:, 1], n_groups=ids.size),
                          equal_nan=True)
