"""The request the site's views receive: Django's, with what django-htmx's middleware adds."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """For annotations only (django-htmx's documented pattern): HtmxMiddleware sets ``request.htmx``
    on every request, which Django's own HttpRequest type does not know."""

    htmx: HtmxDetails
