"""Rate limits on the panelist and invite endpoints (django-ratelimit on the "limits" cache; issue 12).

Rates live in settings.EVALSITE_RATES ("count/period"); each rule has one key:

- share_client / share_study: panelists minted from shared links per client address / per study
  (beside the hard cap Study.share_max_panelists in ratings.services.panelist_from_share);
- token_miss: wrong tokens from one address (guessing), counted on every "not found" of a /r/ URL;
- answer / image: answers (and skips, changes) and image fetches per panelist token;
- invite: invite links per staff user.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited


def over_limit(request: HttpRequest, *, rule: str, key, increment: bool = True) -> bool:
    """Count this request against ``rule`` (unless increment=False) and say whether it is over.

    ``key`` is django-ratelimit's: "ip", "user", or a callable (group, request) -> str.
    """
    return is_ratelimited(request, group=f"evalsite:{rule}", key=key, rate=settings.EVALSITE_RATES[rule],
                          increment=increment)


def by(value: str):
    """A fixed key (a token, a study) for over_limit."""
    return lambda group, request: value
