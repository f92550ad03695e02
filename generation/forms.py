from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Count, QuerySet

from generation.models import Backend, ImageFormat, ImageModel
from prompts.models import Prompt, PromptSuite


class ImageModelAdminForm(forms.ModelForm):
    """The admin's add/change form; the checks live in generation.validation (shared with seed_models)."""

    class Meta:
        model = ImageModel
        fields = (
            "name", "slug", "enabled", "notes", "backend", "source", "revision", "pipeline_class", "load_params", "trust_remote_code",
            "num_inference_steps", "guidance_scale", "width", "height", "extra_params",
            "dtype", "quantization", "offload", "fast_mode", "min_vram_gb", "fallback",
        )

    def clean(self):
        cleaned = super().clean()
        fallback = cleaned.get("fallback")
        if fallback is not None and self.instance.pk is not None and fallback.pk == self.instance.pk:
            self.add_error("fallback", "A model cannot be its own fallback.")
        return cleaned  # ModelForm validation then runs ImageModel.clean() -> image_model_errors


def prompt_category_choices() -> list[tuple[str, str]]:
    rows = Prompt.objects.exclude(category="").values("category").annotate(n=Count("pk")).order_by("category")
    return [(r["category"], r["category"]) for r in rows]


class SweepForm(forms.Form):
    name = forms.CharField(max_length=200, required=False,
                           help_text="Empty: “suite × N models × S seeds”.")
    suite = forms.ModelChoiceField(queryset=PromptSuite.objects.order_by("name"))
    image_models = forms.ModelMultipleChoiceField(
        queryset=ImageModel.objects.filter(enabled=True).exclude(backend=Backend.IMPORTED).order_by("name"),
        widget=forms.CheckboxSelectMultiple, label="Models",
    )
    seeds = forms.IntegerField(min_value=1, max_value=64, initial=1, help_text="Seeds 0..N-1 for every prompt.")
    categories = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Prompt categories",
        help_text="Only prompts of these categories (none ticked: every category).",
    )
    sample = forms.IntegerField(required=False, min_value=1, label="Random subset",
                                help_text="Render only this many prompts, drawn at random (empty: all).")
    sample_seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1, label="Subset seed",
                                     help_text="Draws the same subset again (empty: a new random draw).")
    canvas_width = forms.IntegerField(required=False, min_value=8, max_value=8192,
                                      help_text="Empty: 1024 or the largest native width of the chosen models.")
    canvas_height = forms.IntegerField(required=False, min_value=8, max_value=8192,
                                       help_text="Empty: 1024 or the largest native height of the chosen models.")
    image_format = forms.ChoiceField(choices=ImageFormat.choices, initial=ImageFormat.PNG)
    start_anyway = forms.BooleanField(required=False, label="Start even with models no worker can load")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = prompt_category_choices()

    def offered(self, name: str) -> QuerySet[Any]:
        """The rows a model choice field of this form offers (the form's own copy of its queryset)."""
        field = self.fields[name]
        if not isinstance(field, forms.ModelChoiceField) or field.queryset is None:
            raise TypeError(f"{name} is not a model choice field with a queryset")
        return field.queryset


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern): a zip, or a folder's images."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        one = super().clean
        if isinstance(data, (list, tuple)):
            return [one(d, initial) for d in data]
        return [one(data, initial)] if data else []


class ImageImportForm(forms.Form):
    model_name = forms.CharField(max_length=200, label="Model name",
                                 help_text="A registered model's name or slug, or a new name (an imported model).")
    images = MultipleFileField(
        required=False, label="Zip or images",
        help_text="One .zip, or image files (with a manifest.csv among them, or named by prompt number: 12.png).",
    )
    folder = MultipleFileField(
        required=False, label="…or a folder", widget=MultipleFileInput(attrs={"webkitdirectory": True}),
    )
    manifest = forms.FileField(required=False, label="Manifest CSV",
                               help_text="prompt,file[,seed,seconds,cost] — when it is not among the files.")

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("images") or cleaned.get("folder")):
            raise forms.ValidationError("Choose a zip, some images or a folder.")
        return cleaned
