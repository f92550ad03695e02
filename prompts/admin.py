from django.contrib import admin

from .models import Prompt, PromptSuite


class PromptInline(admin.TabularInline):
    model = Prompt
    fields = ("position", "text", "category", "expected_text", "language")
    extra = 0
    show_change_link = True


@admin.register(PromptSuite)
class PromptSuiteAdmin(admin.ModelAdmin):
    list_display = ("name", "source_filename", "source_format", "created_at")
    search_fields = ("name",)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("position", "short_text", "category", "expected_text", "language", "suite")
    list_filter = ("suite", "category", "language")
    search_fields = ("text", "expected_text")
    list_select_related = ("suite",)

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return obj.text[:100]
