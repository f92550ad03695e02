"""OCR text accuracy (generation.engine.ocr): Tesseract on clean text, the scoring rules, failures recorded."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from generation.engine.demo_draw.pipeline import CJK_FONT_FILES, FONT_FILES
from generation.engine.ocr import score_text, text_check

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (make setup)")

LINES = {
    "en": ["OPEN 24 HOURS", "Fresh Beans Weekly", "Send money now", "SUNNY PRESS", "Thank you for waiting"],
    "de": ["Frische Brötchen", "Große Straße", "Bäckerei Müller", "Öffnungszeiten täglich", "Grüße aus Köln"],
    "zh": ["清风茶社", "欢迎光临", "中国银行", "今天天气很好", "北京大学"],
}


def _font(path_options, size):
    path = next((p for p in path_options if __import__("os").path.isfile(p)), None)
    if path is None:
        pytest.skip(f"no font among {path_options}")
    return ImageFont.truetype(path, size)


def _clean(text: str, *, cjk: bool) -> Image.Image:
    image = Image.new("RGB", (1024, 160), "white")  # wide enough for every line
    ImageDraw.Draw(image).text((24, 48), text, font=_font(CJK_FONT_FILES if cjk else FONT_FILES, 44), fill="black")
    return image


@pytest.mark.parametrize("language", sorted(LINES))
def test_ocr_reads_clean_text_in_each_installed_language(language):
    words = found = 0
    for line in LINES[language]:
        check = text_check(_clean(line, cjk=language == "zh"), expected=line, language=language)
        assert not check.error, check.error
        parts = [line] if language == "zh" else line.split()
        words += len(parts)
        found += sum(1 for w in parts if w.casefold() in check.recognised.replace(" ", "" if language == "zh" else " ")
                     .casefold())
    assert found / words >= 0.95, (language, found, words)


def test_scoring_matches_the_best_window_and_needs_every_word():
    assert score_text(expected="OPEN 24 HOURS", recognised="motel\nOPEN 24 HOURS\nvacancy") == (0.0, True)
    cer, all_words = score_text(expected="OPEN 24 HOURS", recognised="OPEN 24 HOUES")
    assert cer == pytest.approx(1 / 13) and all_words is False
    assert score_text(expected="$2,450.00 | Send money", recognised="$2,450.00") == (pytest.approx(10 / 19), False)
    assert score_text(expected="清风茶社", recognised="清 风 茶 社") == (0.0, True)
    assert score_text(expected="", recognised="anything") == (None, None)
    assert score_text(expected="SALE", recognised="") == (1.0, False)


def test_an_ocr_failure_is_recorded_not_raised():
    check = text_check(Image.new("RGB", (64, 64), "white"), expected="HI", language="en", timeout=1e-6)
    assert check.error.startswith("OCR failed") and check.cer is None
