from django import forms

from generation.models import ImageFormat, ImageModel
from prompts.models import PromptSuite


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


class SweepForm(forms.Form):
    suite = forms.ModelChoiceField(queryset=PromptSuite.objects.order_by("name"))
    image_models = forms.ModelMultipleChoiceField(
        queryset=ImageModel.objects.filter(enabled=True).order_by("name"),
        widget=forms.CheckboxSelectMultiple, label="Models",
    )
    seeds = forms.IntegerField(min_value=1, max_value=64, initial=1, help_text="Seeds 0..N-1 for every prompt.")
    canvas_width = forms.IntegerField(required=False, min_value=8, max_value=8192,
                                      help_text="Empty: the largest model width.")
    canvas_height = forms.IntegerField(required=False, min_value=8, max_value=8192,
                                       help_text="Empty: the largest model height.")
    image_format = forms.ChoiceField(choices=ImageFormat.choices, initial=ImageFormat.PNG)
