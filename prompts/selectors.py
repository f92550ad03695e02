"""Reads for prompt suites."""

from __future__ import annotations

from django.db.models import Count

from .models import Prompt, PromptSuite


def suite_summary(*, suite: PromptSuite) -> dict:
    """What an import produced: counts per category and language, and how many ask for text."""
    prompts = Prompt.objects.filter(suite=suite)
    categories = list(prompts.values_list("category").annotate(n=Count("id")).order_by("-n", "category"))
    languages = list(
        prompts.exclude(language="").values_list("language").annotate(n=Count("id")).order_by("-n", "language")
    )
    return {
        "count": prompts.count(),
        "categories": categories,
        "languages": languages,
        "with_expected_text": prompts.exclude(expected_text="").count(),
    }
