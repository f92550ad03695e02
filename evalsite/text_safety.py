"""Text from prompt files shown safely: direction controls isolated and made visible (issue 12).

A prompt such as ``evil\u202eexe.live`` would read "evil" + "evil.exe" reversed; a bidi override in
the expected text reverses what the panelist is asked to check. On every page such text goes
through ``bidi_safe``: it sits in ``<bdi dir="auto">`` (its direction can't leak into the page
around it) and each invisible control character is shown as a visible mark (``⟨U+202E⟩``) instead
of acting. The importer flags the same characters as a warning, with the line.
"""

from __future__ import annotations

import unicodedata

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Direction embeddings/overrides/isolates, marks, and other invisible format characters that can
# make text read differently from what it holds.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")


def _is_control(ch: str) -> bool:
    return ch in BIDI_CONTROLS or ch in INVISIBLE or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")


def hidden_controls(text: str) -> list[str]:
    """The direction and other invisible control characters in ``text``, as U+XXXX names, in order, once each."""
    seen: dict[str, None] = {}
    for ch in text or "":
        if _is_control(ch):
            seen.setdefault(f"U+{ord(ch):04X}", None)
    return list(seen)


def bidi_safe(text: str | None) -> SafeString:
    """Escaped ``text`` in an isolating ``<bdi dir="auto">``, each control shown as a visible mark."""
    out = []
    for ch in text or "":
        if _is_control(ch):
            name = unicodedata.name(ch, "control character").lower()
            out.append(f'<span class="ctl" title="{escape(name)}">⟨U+{ord(ch):04X}⟩</span>')
        else:
            out.append(escape(ch))
    return mark_safe('<bdi dir="auto">' + "".join(out) + "</bdi>")
