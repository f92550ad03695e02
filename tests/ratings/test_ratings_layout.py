"""The panelist's page on a laptop (1280x800) and a phone (390x844): layout from bounding boxes,
full-size zoom, touch targets, and axe-core (vendored, tests/vendor/axe-core) on every panelist page."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from ratings import services
from tests.factories import make_sweep

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_sync_orm_in_browser_tests")]

AXE = Path(settings.BASE_DIR) / "tests" / "vendor" / "axe-core" / "axe.min.js"
SIZE = 1024  # real canvas size: the page must scale it down, and zoom must show it 1:1
LONG_PROMPT = "a lighthouse on a cliff at dusk, " * 125  # ~4,000 characters


def _study(mode: str, *, long_prompt: bool = False):
    # Every prompt asks for text: three criteria on every item (the case the layout must fit).
    sweep, _models, prompts, _gens = make_sweep(n_models=2, n_prompts=2, text_prompts=2, canvas=SIZE)
    if long_prompt:
        for p in prompts:
            p.text = LONG_PROMPT
            p.save(update_fields=["text"])
    study = services.study_create(sweep=sweep, name=f"layout {mode}", mode=mode, ratings_per_item=1,
                                  gold_enabled=False)
    services.study_open(study=study)
    panelist = services.panelist_create(study=study)
    return study, panelist


def _axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _answer_by_keyboard(page, digit: str | None = None) -> None:
    """Score every scale with the digit keys, save with Enter, wait for the next item."""
    before = page.locator("#rating-item").get_attribute("data-assignment")
    for i in range(page.locator("fieldset.scale").count()):
        page.keyboard.press(digit or str(i % 9 + 1))
    page.keyboard.press("Enter")
    page.wait_for_function("(b) => document.getElementById('rating-item').getAttribute('data-assignment') !== b",
                           arg=before)


def _in_viewport(box, viewport) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5
            and box["y"] + box["height"] <= viewport["height"] + 0.5)


def _assert_all_visible(page, viewport):
    boxes = {"image": [page.locator(".shot img").nth(i).bounding_box() for i in range(page.locator(".shot img").count())],
             "scale": [page.locator("fieldset.scale").nth(i).bounding_box()
                       for i in range(page.locator("fieldset.scale").count())],
             "save": [page.locator("button.save").bounding_box()]}
    for kind, found in boxes.items():
        for box in found:
            assert _in_viewport(box, viewport), (kind, box, viewport)
    return boxes


def test_desktop_single_and_long_prompt_fit_one_screen_and_pass_axe(page, live_server):
    viewport = {"width": 1280, "height": 800}
    page.set_viewport_size(viewport)
    _study_, panelist = _study("single", long_prompt=True)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    assert _axe(page) == [], "consent page"
    page.keyboard.press("Enter")
    page.wait_for_selector("form.rate-form")
    boxes = _assert_all_visible(page, viewport)
    image, scales = boxes["image"][0], boxes["scale"]
    assert len(scales) == 3 and all(s["x"] >= image["x"] + image["width"] for s in scales)  # beside the image
    assert image["height"] >= 400
    more = page.locator("button.show-more")
    assert more.is_visible()
    more.click()
    assert page.locator(".prompt").bounding_box()["height"] > 400  # the whole 4,000 characters
    more.click()
    assert _axe(page) == [], "single page"
    # Zoom: a click opens the stored image at its own 1024 px, larger than the screen: pannable.
    page.locator(".zoom-open").first.click()
    page.wait_for_selector("dialog#zoom[open]")
    zoomed = page.locator("dialog#zoom .zoom-pane img")
    page.wait_for_function("() => document.querySelector('#zoom .zoom-pane img').complete")
    assert zoomed.bounding_box()["width"] == SIZE and page.evaluate("document.querySelector('#zoom img').naturalWidth") == SIZE
    pane = page.locator("dialog#zoom .zoom-pane")
    assert pane.evaluate("p => p.scrollHeight > p.clientHeight")
    page.keyboard.press("Escape")
    assert not page.locator("dialog#zoom").is_visible()
    page.keyboard.press("z")
    assert page.locator("dialog#zoom").is_visible()
    page.keyboard.press("Escape")


def test_desktop_pair_fits_one_screen_zoom_flips_at_the_same_spot(page, live_server):
    viewport = {"width": 1280, "height": 800}
    page.set_viewport_size(viewport)
    _study_, panelist = _study("pair")
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    boxes = _assert_all_visible(page, viewport)
    a, b = boxes["image"]
    assert b["x"] >= a["x"] + a["width"] and a["height"] >= 250
    assert len(boxes["scale"]) == 2 * 3  # three criteria under each image
    assert not page.locator("button.show-more").is_visible()  # a short prompt has nothing to show
    assert _axe(page) == [], "pair page"
    page.locator(".zoom-open").first.click(position={"x": 20, "y": 20})
    page.wait_for_selector("dialog#zoom[open]")
    pane = page.locator("dialog#zoom .zoom-pane")
    page.wait_for_function("() => document.querySelector('#zoom .zoom-pane img').complete")
    pane.evaluate("p => { p.scrollLeft = 200; p.scrollTop = 150; }")
    spot = pane.evaluate("p => [p.scrollLeft, p.scrollTop]")
    assert spot[1] == 150  # 1024 px tall in a 800 px window: panned down
    first_src = page.locator("#zoom .zoom-pane img").get_attribute("src")
    page.keyboard.press("x")
    assert page.locator("#zoom .zoom-pane img").get_attribute("src") != first_src
    assert pane.evaluate("p => [p.scrollLeft, p.scrollTop]") == spot  # B at the same spot
    assert page.locator("#zoom .zoom-label").inner_text() == "Right image (B)"
    page.keyboard.press("Escape")
    # Rate everything: the end page passes axe too and counts what was done.
    while page.locator("form.rate-form").count():
        _answer_by_keyboard(page)
    assert "You answered" in page.locator("#rating-item").inner_text()
    assert _axe(page) == [], "end page"


def test_phone_pair_on_one_screen_touch_targets_no_keyboard_hints(browser, live_server):
    viewport = {"width": 390, "height": 844}
    context = browser.new_context(viewport=viewport, has_touch=True, is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    _study_, panelist = _study("pair")
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    a, b = (page.locator(".shot img").nth(i).bounding_box() for i in range(2))
    assert _in_viewport(a, viewport) and _in_viewport(b, viewport) and abs(a["y"] - b["y"]) < 1
    assert a["width"] >= 150
    for i in range(page.locator(".options label span").count()):
        box = page.locator(".options label span").nth(i).bounding_box()
        assert box["height"] >= 44 and box["width"] >= 24, box
    assert not page.locator(".hints").is_visible() and not page.locator("button.save kbd").is_visible()
    assert page.locator(".touch-hint").is_visible()
    # Scrolling to the last scale keeps both images in view (they stick to the top).
    page.locator("fieldset.scale").last.scroll_into_view_if_needed()
    a, b = (page.locator(".shot img").nth(i).bounding_box() for i in range(2))
    assert _in_viewport(a, viewport) and _in_viewport(b, viewport)
    page.locator(".zoom-open").nth(1).tap()
    page.wait_for_selector("dialog#zoom[open]")
    assert page.locator("#zoom .zoom-flip").bounding_box()["height"] >= 44
    assert _axe(page) == [], "phone pair page with zoom open"
    context.close()


def test_previous_changes_the_last_answer_by_keyboard(page, live_server):
    from ratings.models import Assignment, AssignmentStatus, Rating, RatingChange, StudyItem

    viewport = {"width": 1280, "height": 800}
    page.set_viewport_size(viewport)
    study, panelist = _study("single")
    services.panelist_consent(panelist=panelist)
    page.goto(f"{live_server.url}/r/{panelist.token}/")
    page.wait_for_selector("form.rate-form")
    for _ in range(2):
        _answer_by_keyboard(page, "3")
    current = page.locator("#rating-item").get_attribute("data-assignment")
    last = Assignment.objects.filter(panelist=panelist, status=AssignmentStatus.DONE).order_by("-answered_at").first()
    counters = list(StudyItem.objects.filter(study=study).values_list("n_assigned", "n_done"))
    page.get_by_role("link", name="← Previous answer").click()
    page.wait_for_selector("text=Changing your answer 1 of 2")
    assert page.locator("#rating-item").get_attribute("data-assignment") == last.ref
    assert page.locator("fieldset.scale input:checked").count() == page.locator("fieldset.scale").count()
    _assert_all_visible(page, viewport)
    assert page.locator("details.skip").count() == 0
    assert _axe(page) == [], "change page"
    page.keyboard.press("8")  # the first scale, then on to the others (already answered) and Save
    page.keyboard.press("Enter")
    page.wait_for_function("(c) => document.getElementById('rating-item').getAttribute('data-assignment') === c",
                           arg=current)
    assert page.locator("#saved").inner_text().strip() == "Answer changed."
    scores = sorted(Rating.objects.filter(assignment=last).values_list("score", flat=True))
    assert scores[-1] == 8 and scores.count(3) == len(scores) - 1
    assert list(RatingChange.objects.values_list("score", flat=True)) == [3]
    assert list(StudyItem.objects.filter(study=study).values_list("n_assigned", "n_done")) == counters
