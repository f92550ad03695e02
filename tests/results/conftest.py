"""Every results test starts with an empty default cache: cached boards and the snapshot debounce keys
(``results:snapshot:due:…``) of one test must not reach the next (the debounce test failed after another)."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()
