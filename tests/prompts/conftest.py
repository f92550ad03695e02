"""Paths to the shared reference prompt files and the small copies kept here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

DATA = Path(__file__).parent / "data"


@pytest.fixture
def reference_dir() -> Path:
    """../shared/testdata/prompt_suites: required in CI (EVALSITE_REQUIRE_SERVICES=1), else skipped if absent."""
    path = Path(settings.BASE_DIR).parent / "shared" / "testdata" / "prompt_suites"
    if not path.is_dir():
        if os.environ.get("EVALSITE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"reference prompt files are missing: {path}")
        pytest.skip(f"reference prompt files not here: {path}")
    return path


@pytest.fixture
def data_dir() -> Path:
    return DATA
