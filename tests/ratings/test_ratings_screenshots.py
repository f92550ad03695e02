"""README screenshots of the panelist's page on a laptop and a phone (`make screenshots` only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from ratings import services
from tests.ratings.test_ratings_layout import _study

pytestmark = [pytest.mark.screenshots, pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_sync_orm_in_browser_tests")]

SHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


@pytest.mark.parametrize(("name", "mode", "viewport", "touch"), [
    ("panelist-desktop-single.png", "single", {"width": 1280, "height": 800}, False),
    ("panelist-desktop-pair.png", "pair", {"width": 1280, "height": 800}, False),
    ("panelist-phone-pair.png", "pair", {"width": 390, "height": 844}, True),
])
def test_panelist_screenshot(browser, live_server, name, mode, viewport, touch):
    context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch)
    page = context.new_page()
    _study_, panelist = _study(mode)
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    page.keyboard.press("7")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))
    context.close()
    assert (SHOTS / name).stat().st_size > 10_000
