from django import forms
from django.contrib import admin

from .models import Assignment, Criterion, ExportFile, Panelist, Rating, Study
from .selectors import study_locked_fields
from .services import study_default_criteria_ensure, study_items_sync


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0


class StudyAdminForm(forms.ModelForm):
    """Refuses what would corrupt a study that has items: another sweep, another mode."""

    class Meta:
        model = Study
        fields = ("name", "sweep", "mode", "ratings_per_item", "gold_enabled", "gold_share", "instructions", "status",
                  "results_public", "assignment_strategy", "assignment_timeout_minutes", "items_per_panelist",
                  "share_token", "share_max_panelists", "created_by")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            return cleaned
        for field in study_locked_fields(study=self.instance):
            if field in cleaned and cleaned[field] != getattr(self.instance, field):
                self.add_error(field, f"The {field} of a study cannot change once it has items; "
                                      "make a new study instead.")
        return cleaned


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    form = StudyAdminForm
    list_display = ("name", "sweep", "mode", "ratings_per_item", "status", "results_public", "created_at")
    list_filter = ("status", "mode")
    inlines = [CriterionInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + list(study_locked_fields(study=obj)) if obj is not None else fields

    def save_related(self, request, form, formsets, change):
        """A study made here without criteria gets the default ones, and its items."""
        super().save_related(request, form, formsets, change)
        study_default_criteria_ensure(study=form.instance)
        study_items_sync(study=form.instance)


@admin.register(Panelist)
class PanelistAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "study", "created_at", "revoked_at", "excluded", "is_simulated")
    list_filter = ("study", "excluded", "is_simulated")
    readonly_fields = ("token",)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "panelist", "kind", "is_gold", "status", "created_at", "answered_at")
    list_filter = ("study", "kind", "status", "is_gold")
    raw_id_fields = ("left", "right", "shown_prompt", "panelist")


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "panelist", "generation", "criterion", "score", "side", "is_simulated", "created_at")
    list_filter = ("study", "criterion", "is_simulated")
    raw_id_fields = ("assignment", "generation", "panelist")


@admin.register(ExportFile)
class ExportFileAdmin(admin.ModelAdmin):
    """Background exports, for a look and for deleting (the file goes with its row); written only by the task."""

    list_display = ("id", "study", "kind", "status", "rows", "size_bytes", "file", "requested_by", "created_at",
                    "finished_at")
    list_filter = ("status", "kind", "study")
    readonly_fields = [f.name for f in ExportFile._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
