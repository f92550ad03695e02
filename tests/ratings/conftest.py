"""Fixtures for the ratings tests; Chromium launch settings for the browser tests."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.factories import make_sweep


@pytest.fixture
def rendered_sweep(db):
    return make_sweep()


def chromium_path() -> str | None:
    path = "/usr/bin/chromium"
    return path if os.path.exists(path) and shutil.which(path) else None


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """Debian's Chromium, never a downloaded browser."""
    path = chromium_path()
    if path is None:
        if os.environ.get("EVALSITE_REQUIRE_BROWSER") == "1":
            pytest.fail("EVALSITE_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("/usr/bin/chromium is missing")
    return {
        "executable_path": path,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture
def allow_sync_orm_in_browser_tests(monkeypatch):
    """Playwright's sync API runs an event loop in this thread; the ORM calls around it are still sync."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The assignment service keeps a few per-process hints in the cache; tests start clean."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
