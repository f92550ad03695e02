"""Staff forms: creating a study, adding or editing a criterion."""

from __future__ import annotations

from django import forms
from django.db.models import Q

from generation.models import Sweep

from .models import StudyMode


class StudyCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    # a finished sweep with nothing rendered or imported offers no study (issue 15)
    sweep = forms.ModelChoiceField(queryset=Sweep.objects.select_related("suite").filter(
        Q(generations__status="done") | Q(status__in=("pending", "running"))).distinct().order_by("-created_at"))
    mode = forms.ChoiceField(choices=StudyMode.choices, initial=StudyMode.BOTH)
    ratings_per_item = forms.IntegerField(
        min_value=1, max_value=50, initial=3, label="Ratings per image", help_text="k: how many panelists rate each image (and each pair)."
    )
    gold_enabled = forms.BooleanField(required=False, initial=True, label="Gold items",
                                      help_text="Mix in images shown with the wrong prompt to check attention.")
    items_per_panelist = forms.IntegerField(
        min_value=0, initial=0, required=False, label="Items per panelist",
        help_text="How many items one panelist is asked to rate (their progress shows n of m); 0 = as many as they like.",
    )
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                                   help_text="Shown to panelists before they start.")


class CriterionForm(forms.Form):
    key = forms.SlugField(max_length=50, help_text="e.g. aesthetics; an existing key updates that criterion.")
    name = forms.CharField(max_length=100)
    question = forms.CharField(max_length=300)
    categories = forms.CharField(required=False, help_text="Comma-separated prompt categories; empty = all prompts.")
    text_prompts_only = forms.BooleanField(required=False, label="Only prompts that ask for text")

    def category_list(self) -> list[str]:
        return [c.strip() for c in self.cleaned_data.get("categories", "").split(",") if c.strip()]


class ExcludeForm(forms.Form):
    excluded = forms.BooleanField(required=False)
    reason = forms.CharField(max_length=200, required=False)


class RatingsImportForm(forms.Form):
    file = forms.FileField(help_text="CSV or TSV with a header: rater, model, prompt, criterion, score "
                                     "(optional category, pair, side, seed).")
    study_name = forms.CharField(max_length=200)
    format = forms.ChoiceField(choices=[("auto", "Detect from name and content"), ("csv", "CSV"), ("tsv", "TSV")],
                               initial="auto")
