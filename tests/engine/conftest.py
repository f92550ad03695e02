"""Tiny offline models, built once per test session into a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.engine import ModelSpec, tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-models")
    for entry in tiny.TINY_MODELS:
        tiny.build_tiny_pipeline(kind=entry["kind"], path=root / entry["slug"], seed=entry["seed"])
    return root


@pytest.fixture(scope="session")
def tiny_specs(tiny_dir) -> dict[str, ModelSpec]:
    """kind -> ModelSpec of the demo model of that kind."""
    return {
        entry["kind"]: ModelSpec(**tiny.demo_spec_kwargs(entry, source=str(tiny_dir / entry["slug"])))
        for entry in tiny.TINY_MODELS
    }
