"""Fixtures for the generation tests: the tiny offline pipelines, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import PromptFactory, PromptSuiteFactory

PROMPTS = [
    "a red cube on a wooden table",
    "a storefront with 'Hello World' written on it",
    "一只猫坐在窗台上",  # non-Latin prompts go through the tokenizers untouched
    "an abstract painting of waves",
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Build the tiny pipelines once (ENGINE's builder, save_pretrained); tests register them."""
    from generation.engine.tiny import TINY_MODELS, build_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny-models")
    for index, demo in enumerate(TINY_MODELS):
        build_tiny_pipeline(kind=demo["kind"], path=root / demo["slug"], seed=demo.get("seed", index))
    return root


@pytest.fixture
def tiny_models(db, tiny_dir, settings):
    """The tiny random-weight models registered as ImageModels, by slug (no rebuild: the directories are complete)."""
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, str(tiny_dir)]  # built once per session, outside MODEL_DIR
    from generation.services import tiny_models_build

    return {model.slug: model for model, built in tiny_models_build(model_dir=tiny_dir)}


@pytest.fixture(scope="session")
def cpu_engine():
    """One real Engine for the session, as a worker process would have."""
    from generation.engine import Engine

    return Engine(device="cpu")


@pytest.fixture
def suite(db):
    suite = PromptSuiteFactory(name="tiny-suite")
    for position, text in enumerate(PROMPTS, start=1):
        PromptFactory(suite=suite, position=position, text=text)
    return suite


@pytest.fixture
def eager(settings):
    """Chunks run in-process at enqueue time (the real engine, the real task), as a worker would."""
    from evalsite.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
