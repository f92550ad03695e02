from __future__ import annotations

from django import forms

from .importers import FORMATS
from .models import PromptSuite


class SuiteUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV/TSV with a header, a JSON array, JSON Lines, or one prompt per line.")
    suite_name = forms.CharField(max_length=PromptSuite._meta.get_field("name").max_length)
    format = forms.ChoiceField(
        choices=[("auto", "Detect from name and content")] + [(f, f.upper()) for f in FORMATS], initial="auto"
    )
    replace = forms.BooleanField(
        required=False,
        help_text="Replace the prompts of an existing suite of this name (refused once sweeps use it).",
    )
