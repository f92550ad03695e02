"""The leaderboard in a real browser (Debian's Chromium via Playwright) against live_server."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from ratings.results.services import ratings_simulate
from ratings.services import panelist_create, study_close

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = ["FLUX.1 [dev]", "Stable Diffusion 3.5 Large", "Z-Image Turbo", "ERNIE-Image", "HunyuanImage-3.0"]


def test_leaderboard_for_staff_and_hidden_from_panelists_until_published(page, live_server, study_factory):
    study, models, _ = study_factory(mode="both", n_prompts=8, k=2, names=NAMES)
    ratings_simulate(study=study, panelists=16, seed=7)
    study.refresh_from_db()
    panelist = panelist_create(study=study)

    # a panelist, while the study is open: no results, no model names, on either URL
    page.goto(f"{live_server.url}/r/{panelist.token}/results/")
    body = page.locator("body").inner_text()
    assert "not published yet" in body
    assert not any(name in page.content() for name in NAMES)
    page.goto(f"{live_server.url}/studies/{study.pk}/leaderboard/")
    assert "/admin/login/" in page.url
    assert not any(name in page.content() for name in NAMES)

    # staff, through the real admin login form
    get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-password-42")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "a-long-password-42")
    page.click("input[type=submit]")
    page.wait_for_url(f"**/studies/{study.pk}/leaderboard/")
    table = page.locator("#leaderboard")
    assert table.locator("tbody tr").count() == len(NAMES)
    for name in NAMES:
        assert table.get_by_text(name, exact=True).count() == 1
    headers = table.locator("thead th").all_inner_texts()
    assert headers[0] == "Model" and "Avg speed" in headers[1]
    assert headers[-3:] == ["Peak VRAM", "Min VRAM", "$ per 1,000 images"]
    assert any("Prompt accuracy" in h for h in headers) and any("Photorealism" in h for h in headers)
    first_cell = table.locator("tbody tr").first.locator("td").nth(1).inner_text()
    assert "[" in first_cell and "n=" in first_cell  # mean [CI] and n
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    assert charts.first.locator("circle.dot").count() == len(NAMES)
    assert page.get_by_role("heading", name="Side-by-side pairs").is_visible()
    assert page.locator("#position-bias").is_visible()
    assert "Simulated:" in page.locator(".banner", has_text="Simulated:").inner_text()

    # at 1280 px the score table fits its card without scrolling; any wider table scrolls inside its card
    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.locator("#leaderboard-scroll").evaluate("e => e.scrollWidth <= e.clientWidth")
    for table in page.locator("section.card table").all():
        box = table.bounding_box()
        card = table.locator("xpath=ancestor::section[1]").bounding_box()
        if box["x"] + box["width"] > card["x"] + card["width"] + 1:
            wrapper = table.locator("xpath=..")
            assert "scroll-x" in (wrapper.get_attribute("class") or ""), table.inner_text()[:80]
            outer = wrapper.bounding_box()
            assert outer["x"] + outer["width"] <= card["x"] + card["width"] + 1

    # on a phone nothing widens the page: wide tables scroll inside their cards, the grids stack
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})

    # "Keep this table" beside "Recompute now" under the snapshot line: one row, apart, inside the page
    line = page.locator("#snapshot-actions").bounding_box()
    recompute = page.get_by_role("button", name="Recompute now").bounding_box()
    keep = page.locator("#keep-button").bounding_box()
    assert abs(keep["y"] - recompute["y"]) < 4 and keep["x"] >= recompute["x"] + recompute["width"]
    assert line["x"] <= recompute["x"] and keep["x"] + keep["width"] <= page.viewport_size["width"]
    assert line["y"] >= page.locator("#snapshot").bounding_box()["y"] + 10  # below the "As of ..." line
    snapshot_id = page.locator("#snapshot").get_attribute("data-snapshot")
    page.click("#keep-button")
    page.wait_for_url(f"**/studies/{study.pk}/leaderboard/?snapshot={snapshot_id}")
    assert page.locator("#kept").inner_text() == "Kept for good."
    kept_row = page.locator("#snapshots tbody tr", has_text="(shown)")
    assert kept_row.locator("td").last.inner_text() == "kept"

    # published after closing: the panelist's link shows the table
    study_close(study=study)
    study.results_public = True
    study.save(update_fields=["results_public"])
    panelist_page = page.context.browser.new_page()
    panelist_page.goto(f"{live_server.url}/r/{panelist.token}/results/")
    assert panelist_page.locator("#leaderboard tbody tr").count() == len(NAMES)
    assert "Lowest agreement" not in panelist_page.content()
    assert panelist_page.locator("#keep-form").count() == 0 and panelist_page.get_by_text("Recompute now").count() == 0
    panelist_page.close()
