"""One error base for the services of all three apps: a message to show and the HTTP status to answer with."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from evalsite.errors import ServiceError
from generation.services import SweepInvalid
from generation.services.imports import ImageImportError
from prompts.importers import Problem
from prompts.services import PromptFileInvalid
from ratings.services import NotAssigned, RatingRefused, StudySetupError
from ratings.services.imports import RatingFileInvalid

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("error, status", [
    (PromptFileInvalid([Problem(line=3, message="no text")]), 400),
    (SweepInvalid("Give at least one seed.; Seeds must be distinct.", messages=["Give at least one seed.",
                                                                                "Seeds must be distinct."]), 400),
    (ImageImportError(["a.zip:2: not an image"]), 400),
    (RatingFileInvalid([Problem(line=2, message="score 11")]), 400),
    (StudySetupError("A study needs a name."), 400),
    (NotAssigned("This item is not assigned to you."), 404),
])
def test_every_app_raises_the_one_base(error, status):
    assert isinstance(error, ServiceError)
    assert error.status_code == status
    assert error.message and all(isinstance(m, str) and m for m in error.messages)
    assert issubclass(type(error), RatingRefused) == type(error).__module__.startswith("ratings.services.errors")


def test_problem_lists_become_one_message_per_problem():
    error = PromptFileInvalid([Problem(line=3, message="no text"), Problem(line=9, message="too long")])
    assert error.messages == ["line 3: no text", "line 9: too long"]
    assert error.lines("suite.csv") == ["suite.csv:3: no text", "suite.csv:9: too long"]


def test_the_error_module_imports_no_app():
    """prompts (the bottom layer) imports it, so it must import nothing of prompts, generation or ratings."""
    tree = ast.parse((ROOT / "evalsite" / "errors.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in {"prompts", "generation", "ratings", "evalsite"}]
