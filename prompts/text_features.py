"""What a prompt's text tells us by itself: the text it asks to render, and its script.

expected_text rule (also stated on the upload page):
a quoted span is taken as the text to render only when the prompt asks for
writing — it contains a cue word (written, says, sign, word, letters, logo, label,
title, printed, painted, …) or its category/challenge is a text category
(DrawBench "Text", PartiPrompts "Writing & Symbols"). Without a cue, quotes are
more often a title or scare quotes than a request to render letters.
Apostrophes are not quotes: a single quote opens a span only after a non-letter
and closes it only before a non-letter, so "a dog's bone and a cat's toy" has no span,
while "a book with the words 'Don't Panic!' written on it" gives "Don't Panic!".
"""

from __future__ import annotations

import re
import unicodedata

# Double-style quotes never double as apostrophes; single-style ones need word boundaries.
_SPAN = re.compile(
    r'"(?P<d>[^"\n]*?\S[^"\n]*?)"'
    r"|“(?P<cd>[^”\n]+)”"
    r"|„(?P<low>[^“”\n]+)[“”]"
    r"|「(?P<cj>[^」\n]+)」"
    r"|『(?P<cj2>[^』\n]+)』"
    r"|(?<![\w'])'(?P<s>\S(?:[^'\n]|'(?=\w))*?(?<=\S))'(?!\w)"
    r"|(?<!\w)‘(?P<cs>\S(?:[^’\n]|’(?=\w))*?(?<=\S))’(?!\w)"
)

_CUE = re.compile(
    r"\b(writ\w*|wrote|says?|saying|reads?|reading|signs?|signage|texts?|words?|letter\w*|logos?"
    r"|labels?|labell?ed|titled?|captions?|printed|painted|spell\w*|typograph\w*|fonts?|headlines?"
    r"|banners?|buttons?|show(?:s|ing)|display(?:s|ed|ing)?|posters?|billboards?|stickers?|t-shirts?|shirts?|slogans?|called|named|neon|graffiti"
    r"|inscri\w*|engraved|carved|embroidered|stamped|menus?|covers?|storefronts?|store front)\b"
    r"|写着|写有|文字|字样|标语|招牌|标志|書かれ|文字|看板|라고|글자",
    re.IGNORECASE,
)
_TEXT_CATEGORIES = {"text", "writing & symbols", "text rendering", "text_rendering", "typography"}

EXPECTED_TEXT_SEPARATOR = " | "


def quoted_spans(text: str) -> list[str]:
    """Every quoted span in order, quotes removed, inner text unchanged."""
    spans = []
    for match in _SPAN.finditer(text):
        value = next(v for v in match.groupdict().values() if v is not None)
        spans.append(value.strip())
    return [s for s in spans if s]


def asks_for_text(*, text: str, category: str = "", challenge: str = "") -> bool:
    if category.strip().lower() in _TEXT_CATEGORIES or challenge.strip().lower() in _TEXT_CATEGORIES:
        return True
    return bool(_CUE.search(text))


def expected_text_guess(*, text: str, category: str = "", challenge: str = "") -> str:
    """The text the image should render, from the prompt's quotes, or "" when it asks for none."""
    if not asks_for_text(text=text, category=category, challenge=challenge):
        return ""
    return EXPECTED_TEXT_SEPARATOR.join(quoted_spans(text))


# Scripts that name one language well enough; shared scripts get an "und-<Script>" tag
# (BCP 47 for "language unknown, written in this script") rather than a guess.
_SCRIPT_LANGUAGE = {
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "CJK": "zh",
    "THAI": "th",
    "GREEK": "el",
    "HEBREW": "he",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
    "CYRILLIC": "und-Cyrl",
    "ARABIC": "und-Arab",
    "DEVANAGARI": "und-Deva",
    "BENGALI": "bn",
    "TAMIL": "ta",
}


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def language_guess(text: str) -> str:
    """A rough language tag from the dominant non-Latin script; "" for Latin script (unknown)."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        script = _script(ch)
        if script in _SCRIPT_LANGUAGE:
            counts[script] = counts.get(script, 0) + 1
    if not letters or not counts:
        return ""
    # Any kana means Japanese, even when kanji dominate.
    if counts.get("HIRAGANA") or counts.get("KATAKANA"):
        return "ja"
    script, n = max(counts.items(), key=lambda kv: kv[1])
    # Han characters carry a word each; a handful among Latin letters still marks the prompt.
    weight = n * (3 if script in {"CJK", "HANGUL"} else 1)
    if weight * 2 < letters:
        return ""
    return _SCRIPT_LANGUAGE[script]
