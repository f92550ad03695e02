from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from .models import Prompt, PromptSuite

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _SuiteCounts(TypedDict):
    n_prompts: int  # annotated by PromptSuiteAdmin.get_queryset


@admin.register(PromptSuite)
class PromptSuiteAdmin(admin.ModelAdmin):
    list_display = ("name", "prompt_count", "source_filename", "source_format", "created_at")
    search_fields = ("name",)
    readonly_fields = ("prompts_link", "source_filename", "source_format", "created_at", "created_by")
    fields = ("name", "description", "prompts_link", "source_filename", "source_format", "created_at", "created_by")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_prompts=Count("prompts"))

    @admin.display(description="prompts", ordering="n_prompts")
    def prompt_count(self, obj: WithAnnotations[PromptSuite, _SuiteCounts]) -> int:
        return obj.n_prompts

    @admin.display(description="prompts")
    def prompts_link(self, obj: WithAnnotations[PromptSuite, _SuiteCounts]) -> str:
        # A suite can hold 100,000 prompts: link to the filtered list rather than an inline.
        if obj.pk is None:
            return "-"
        url = reverse("admin:prompts_prompt_changelist") + f"?suite__id__exact={obj.pk}"
        with_text = obj.prompts.exclude(expected_text="").count()
        return format_html('<a href="{}">{} prompts</a> ({} ask for rendered text)', url, obj.n_prompts, with_text)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("position", "short_text", "category", "expected_text", "language", "suite")
    list_filter = ("suite", "category", "language")
    search_fields = ("text", "expected_text")
    list_select_related = ("suite",)
    readonly_fields = ("text_sha256", "source_line")

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return obj.text[:100]
