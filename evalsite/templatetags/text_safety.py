"""{% load text_safety %} … {{ prompt.text|bidi_safe }}: see evalsite.text_safety."""

from django import template

from evalsite.text_safety import bidi_safe as _bidi_safe

register = template.Library()


@register.filter(is_safe=True)
def bidi_safe(value):
    return _bidi_safe("" if value is None else str(value))
