"""Automatic text accuracy: Tesseract OCR of a rendered image against the text its prompt asks for.

Pure Python + pytesseract (Debian's ``tesseract-ocr`` with the languages of the suites); no Django.
``text_check`` never raises: a missing binary, a missing language or a crash comes back as
``error`` so the caller records it and rendering goes on.

Scoring, per image: each requested string (``expected_text``, parts separated by `` | ``) is
matched to its best window of the recognised text (edit distance of the string to any substring,
so other text in the picture costs nothing); the character error rate (CER) is the sum of those
distances over the total length of the strings, capped at 1; ``all_words`` says whether every
word of every string appears (a word of a script without spaces, e.g. Chinese, must appear as a
substring). Comparison ignores case, Unicode width forms and whitespace runs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# BCP 47 primary language -> Tesseract traineddata; English is always added (text in
# an image is often English whatever the prompt's language).
TESSERACT_LANGS = {"en": "eng", "zh": "chi_sim", "de": "deu"}
PARTS = re.compile(r"\s+\|\s+")
_PUNCT = re.compile(r"[^\w$€£%]+", re.UNICODE)


@dataclass(frozen=True)
class TextCheck:
    recognised: str = ""
    cer: float | None = None  # 0 = every character right, 1 = nothing of it
    all_words: bool | None = None
    languages: str = ""
    error: str = ""

    @property
    def accuracy(self) -> float | None:
        return None if self.cer is None else 1.0 - self.cer


def tesseract_languages(language: str) -> str:
    primary = (language or "en").split("-")[0].lower()
    lang = TESSERACT_LANGS.get(primary, "eng")
    return lang if lang == "eng" else f"{lang}+eng"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _is_spaceless(word: str) -> bool:
    return any(unicodedata.east_asian_width(ch) == "W" for ch in word)


def best_window_distance(needle: str, haystack: str) -> int:
    """Fewest edits turning ``needle`` into some substring of ``haystack`` (Sellers' algorithm)."""
    prev = list(range(len(needle) + 1))
    best = prev[-1]
    for ch in haystack:
        cur = [0]
        for i, nc in enumerate(needle, start=1):
            cur.append(min(prev[i] + 1, cur[i - 1] + 1, prev[i - 1] + (nc != ch)))
        prev = cur
        best = min(best, cur[-1])
    return best


def expected_parts(expected: str) -> list[str]:
    return [p for p in (_norm(x) for x in PARTS.split(expected or "")) if p]


def score_text(*, expected: str, recognised: str) -> tuple[float | None, bool | None]:
    """(CER capped at 1, every word present) of recognised text against the requested strings."""
    parts = expected_parts(expected)
    if not parts:
        return None, None
    seen = _norm(recognised)
    spaceless_seen = seen.replace(" ", "")
    total = sum(len(p) for p in parts)
    errors = 0
    for part in parts:
        if _is_spaceless(part):  # OCR of CJK puts spaces between characters
            errors += best_window_distance(part.replace(" ", ""), spaceless_seen)
        else:
            errors += best_window_distance(part, seen)
    words_seen = {w for w in (_PUNCT.sub("", t) for t in seen.split()) if w}
    all_words = True
    for part in parts:
        for word in part.split():
            bare = _PUNCT.sub("", word)
            if not bare:
                continue
            present = bare in spaceless_seen if _is_spaceless(bare) else (bare in words_seen or word in seen.split())
            all_words = all_words and present
    return min(1.0, errors / total), all_words


def text_check(image, *, expected: str, language: str = "", timeout: float = 30.0) -> TextCheck:
    """OCR ``image`` and score it against ``expected``. Never raises: failures are in ``error``.

    ``image`` is a PIL image or the path of an image file (an encoded image is handed to
    Tesseract as it is, with no second encoding)."""
    languages = tesseract_languages(language)
    try:
        # Inside the try: a missing or broken pytesseract is recorded as an OCR failure, never an import error.
        import pytesseract

        # one uniform block of text (psm 6): of psm 3/6/7/11/12 the best on clean text in eng, deu, chi_sim
        source = image if isinstance(image, str) else image.convert("L")
        recognised = pytesseract.image_to_string(source, lang=languages, config="--psm 6", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - OCR must never stop rendering: record why and go on
        return TextCheck(languages=languages, error=f"OCR failed: {type(exc).__name__}: {exc}"[:1000])
    recognised = recognised.strip()
    cer, all_words = score_text(expected=expected, recognised=recognised)
    return TextCheck(recognised=recognised, cer=cer, all_words=all_words, languages=languages)


def tesseract_version() -> str:
    try:
        # Inside the try: a missing or broken pytesseract is recorded as an OCR failure, never an import error.
        import pytesseract

        return str(pytesseract.get_tesseract_version())
    except Exception:  # noqa: BLE001
        return ""
