from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from evalsite.access import PERM_MANAGE_MODELS, PERM_REMOTE_CODE

from .forms import ImageModelAdminForm
from .models import Generation, GpuPrice, ImageModel, Sweep, VramProfile, WorkerReport


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
        ("Source", {"fields": ("backend", "source", "revision", "pipeline_class", "load_params", "trust_remote_code")}),
        ("Generation settings", {"fields": ("num_inference_steps", "guidance_scale", "width", "height", "extra_params")}),
        ("Memory and speed", {"fields": ("dtype", "quantization", "offload", "fast_mode", "min_vram_gb", "fallback")}),
    )

    def get_readonly_fields(self, request, obj=None):
        """Running a model's own code on the workers is a permission of its own."""
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.has_perm(PERM_REMOTE_CODE):
            fields.append("trust_remote_code")
        return fields

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and request.user.has_perm(PERM_MANAGE_MODELS)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and request.user.has_perm(PERM_MANAGE_MODELS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and request.user.has_perm(PERM_MANAGE_MODELS)


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("__str__", "suite", "status", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("status", "started_at", "finished_at", "progress_link")

    def has_add_permission(self, request) -> bool:
        return False  # sweeps start from /sweeps/new/ or run_sweep, which create the rows and enqueue

    @admin.display(description="Progress")
    def progress_link(self, obj):
        return format_html('<a href="{}">sweep progress</a>', reverse("generation:sweep_detail", args=[obj.pk]))
    filter_horizontal = ("image_models",)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("public_id", "thumbnail", "sweep", "model", "prompt", "seed", "status", "origin", "seconds",
                    "gpu_name", "attempts")
    list_filter = ("status", "origin", "model", "sweep")
    search_fields = ("public_id", "prompt__text")
    list_select_related = ("sweep", "model", "prompt")
    exclude = ("image",)  # its default widget links /media/…, which is never served: image_link serves it to staff
    readonly_fields = ["image_link"] + [f.name for f in Generation._meta.fields if f.name != "image"]

    @admin.display(description="Image")
    def image_link(self, obj):
        return _staff_thumbnail_html(obj, width=128, full_size=True)

    @admin.display(description="Thumbnail")
    def thumbnail(self, obj):
        return _staff_thumbnail_html(obj, width=48)


def _staff_thumbnail_html(obj: Generation, *, width: int, full_size: bool = False):
    """A thumbnail linking the staff image page (the stored file is served by staff views, not /media/)."""
    if not obj.image:
        return "–"
    html = format_html('<a href="{}"><img src="{}" alt="" width="{}" loading="lazy"></a>',
                       reverse("generation:gallery_image", args=[obj.public_id]),
                       reverse("generation:staff_thumbnail", args=[obj.public_id]), width)
    if full_size:
        html += format_html(' <a href="{}">full size</a>', reverse("generation:staff_image", args=[obj.public_id]))
    return html


@admin.register(WorkerReport)
class WorkerReportAdmin(admin.ModelAdmin):
    list_display = ("worker", "reported_at", "device", "gpu_name", "hub_reachable", "requested_at")
    readonly_fields = [f.name for f in WorkerReport._meta.fields]


@admin.register(VramProfile)
class VramProfileAdmin(admin.ModelAdmin):
    """Profiles are asked for from the model's VRAM page or profile_vram (which run them); here they are read."""

    list_display = ("image_model", "status", "gpu_name", "created_at", "finished_at", "worker")
    list_filter = ("status", "gpu_name")
    readonly_fields = [f.name for f in VramProfile._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(GpuPrice)
class GpuPriceAdmin(admin.ModelAdmin):
    """$ per GPU-hour by GPU name: the leaderboard's "$ per 1,000 images" (README "Will it fit my card?")."""

    list_display = ("gpu_name", "usd_per_hour", "note", "updated_at")
    search_fields = ("gpu_name",)
