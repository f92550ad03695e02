from django.contrib import admin

from .forms import ImageModelAdminForm
from .models import Generation, ImageModel, Sweep


@admin.register(ImageModel)
class ImageModelAdmin(admin.ModelAdmin):
    """Any diffusers pipeline (hub id or local directory) can be added here; see generation.validation."""

    form = ImageModelAdminForm
    list_display = (
        "name", "slug", "backend", "source", "pipeline_class", "num_inference_steps", "guidance_scale",
        "width", "height", "dtype", "quantization", "offload", "fallback", "enabled",
    )
    list_filter = ("backend", "quantization", "offload", "enabled", "is_reference")
    search_fields = ("name", "slug", "source")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "enabled", "notes")}),
        ("Source", {"fields": ("backend", "source", "revision", "pipeline_class", "load_params")}),
        ("Generation settings", {"fields": ("num_inference_steps", "guidance_scale", "width", "height", "extra_params")}),
        ("Memory and speed", {"fields": ("dtype", "quantization", "offload", "fast_mode", "min_vram_gb", "fallback")}),
    )


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("__str__", "suite", "status", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("status", "started_at", "finished_at", "progress_link")

    def has_add_permission(self, request) -> bool:
        return False  # sweeps start from /sweeps/new/ or run_sweep, which create the rows and enqueue

    @admin.display(description="Progress")
    def progress_link(self, obj):
        from django.urls import reverse
        from django.utils.html import format_html

        return format_html('<a href="{}">sweep progress</a>', reverse("generation:sweep_detail", args=[obj.pk]))
    filter_horizontal = ("image_models",)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("public_id", "sweep", "model", "prompt", "seed", "status", "seconds", "gpu_name", "attempts")
    list_filter = ("status", "model", "sweep")
    search_fields = ("public_id", "prompt__text")
    list_select_related = ("sweep", "model", "prompt")
    readonly_fields = [f.name for f in Generation._meta.fields]
