"""The leaderboard's typed board: built by leaderboard_compute, equal to itself after a trip through JSON."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from django.core.management import call_command

from ratings.results import selectors as rs
from ratings.results.board import Board, ScoreCell, board_from_dict, board_to_dict

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(study_factory) -> Board:
    study, _, _ = study_factory(mode="both", n_models=3, n_prompts=6, k=2)
    call_command("simulate_panel", study=study.pk, panelists=8, seed=4, stdout=io.StringIO())
    return rs.leaderboard_compute(study=study)


def test_board_round_trips_through_json(board):
    text = json.dumps(board_to_dict(board), allow_nan=False)  # no NaN: missing numbers are None
    again = board_from_dict(json.loads(text))
    assert again == board
    assert isinstance(again.scores["photorealism"][0], ScoreCell)
    assert isinstance(again.pairs.by_criterion["photorealism"].win_rate, tuple)
    assert again.order() == board.order()


def test_the_round_trip_checks_every_field(board):
    """A changed field anywhere (deep in a pair matrix) makes the boards differ: equality is not vacuous."""
    data = json.loads(json.dumps(board_to_dict(board)))
    data["pairs"]["by_criterion"]["photorealism"]["games"][0][1] += 1
    assert board_from_dict(data) != board
    data = json.loads(json.dumps(board_to_dict(board)))
    data["raters"]["lowest"][0]["pseudonym"] = "someone else"
    assert board_from_dict(data) != board


def test_a_board_without_a_later_field_still_loads(board):
    """Snapshots stored before a field was added load with its default."""
    data = json.loads(json.dumps(board_to_dict(board)))
    del data["scores"]["photorealism"][0]["norm_mean"]
    cell = board_from_dict(data).scores["photorealism"][0]
    assert cell.norm_mean is None and cell.mean == board.scores["photorealism"][0].mean


def test_a_board_of_another_format_is_refused(board):
    data = board_to_dict(board) | {"format": 999}
    with pytest.raises(ValueError, match="format 999"):
        board_from_dict(data)


def test_board_is_frozen(board):
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.n_prompts = 0  # type: ignore[misc]


def test_threads_change_nothing(study_factory, settings):
    """The board's numpy work side by side on threads (RESULTS_COMPUTE_THREADS) gives the very board of one thread:
    each job is computed whole on one thread, in the same order of operations."""
    study, _, _ = study_factory(mode="both", n_models=3, n_prompts=12, k=2)
    call_command("simulate_panel", study=study.pk, panelists=8, seed=5, stdout=io.StringIO())
    settings.RESULTS_COMPUTE_THREADS = 1
    one = rs.leaderboard_compute(study=study)
    settings.RESULTS_COMPUTE_THREADS = 3
    three = rs.leaderboard_compute(study=study)
    assert len(one.by_category) > 1 and one.pairs.n_pairs > 0
    assert dataclasses.replace(three, computed_at=one.computed_at) == one
