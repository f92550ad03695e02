"""Shared fixtures. Tests run on SQLite by default and on PostgreSQL + Redis in CI."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from ratings.services import study_create
from tests.factories import make_sweep


def _services_available() -> tuple[bool, str]:
    engine = django_settings.DATABASES["default"]["ENGINE"]
    broker = django_settings.CELERY_BROKER_URL
    if "postgresql" not in engine:
        return False, f"needs PostgreSQL (DATABASE_URL); the database engine is {engine}"
    if not broker.startswith("redis://"):
        return False, f"needs Redis (CELERY_BROKER_URL); the broker is {broker}"
    return True, ""


def pytest_collection_modifyitems(config, items):
    ok, why = _services_available()
    if ok:
        return
    required = os.environ.get("EVALSITE_REQUIRE_SERVICES") == "1"
    for item in items:
        if "services" in item.keywords:
            if required:
                item.add_marker(pytest.mark.xfail(reason=f"REQUIRED but {why}", run=False, strict=True))
            else:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Each test writes images into its own folder, and counts rate limits in a cache of its own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_DIR = tmp_path / "models"
    settings.CACHES = {**settings.CACHES, "limits": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                                     "LOCATION": f"limits-{tmp_path}"}}


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Rate-limit and lockout counters start at zero in every test (the embedded "limits" cache is a
    folder under EVALSITE_DATA_DIR that would otherwise carry counts from test to test and run to run),
    and so do the default cache's keys (the snapshot debounce marks are per study id, and ids repeat
    across tests)."""
    from django.core.cache import caches

    caches["limits"].clear()
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _results_compute_on_read(settings):
    """Leaderboard pages compute a stale snapshot in-process (no results worker runs in most tests);
    tests of the snapshot task path turn this off (tests/results/test_snapshots.py)."""
    settings.RESULTS_COMPUTE_ON_READ = True


# --- Browser tests: Debian's Chromium through pytest-playwright (never a downloaded browser) ---

CHROMIUM = "/usr/bin/chromium"
# Playwright's sync API runs an event loop in the test thread; the ORM calls in the
# test body are still synchronous, so Django's async-safety guard must be relaxed.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("EVALSITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EVALSITE_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
    }


@pytest.fixture
def study_factory(db):
    def make(*, mode: str = "both", n_models: int = 3, n_prompts: int = 6, k: int = 2, gold: bool = True,
             names: list[str] | None = None, **kw):
        sweep, models, prompts, _ = make_sweep(n_models=n_models, n_prompts=n_prompts, text_prompts=2, names=names)
        study = study_create(sweep=sweep, name=f"Study {sweep.pk}", mode=mode, ratings_per_item=k, gold_enabled=gold)
        for field, value in kw.items():
            setattr(study, field, value)
        if kw:
            study.save()
        return study, models, prompts

    return make
