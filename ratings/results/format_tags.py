"""Number formatting for the leaderboard: fixed decimals, percentages, dict lookup; '—' for missing."""

from __future__ import annotations

import math

from django import template

register = template.Library()
MISSING = "—"


def _missing(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


@register.filter
def fmt(value, digits=2):
    if _missing(value):
        return MISSING
    return f"{float(value):.{int(digits)}f}"


@register.filter
def pct(value):
    if _missing(value):
        return MISSING
    return f"{100 * float(value):.0f}%"


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def age(seconds):
    """A snapshot's age for people: '20 s', '3 min', '2 h', '4 days'."""
    if _missing(seconds):
        return MISSING
    s = max(0, int(float(seconds)))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 36 * 3600:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} days"
