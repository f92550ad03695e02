"""Prompt suites and their prompts."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class PromptSuite(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    source_filename = models.CharField(max_length=255, blank=True)
    source_format = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        permissions = [("upload_suite", "Can upload prompt suites")]  # staff roles (evalsite.access)

    def __str__(self) -> str:
        return self.name


def text_digest(text: str) -> str:
    """Stable key for uniqueness: a 4,000-character prompt is too long for a btree index."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Prompt(models.Model):
    suite = models.ForeignKey(PromptSuite, on_delete=models.CASCADE, related_name="prompts")
    position = models.PositiveIntegerField(help_text="Order in the source file, from 1.")
    source_line = models.PositiveIntegerField(null=True, blank=True)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64, editable=False)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    challenge = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)
    expected_text = models.CharField(
        max_length=1000, blank=True, help_text="Text the image must render, for text-rendering criteria."
    )
    language = models.CharField(max_length=16, blank=True, help_text="BCP 47 tag, e.g. en, zh, de.")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["suite", "position"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "text_sha256"], name="prompt_unique_text_per_suite"),
            models.UniqueConstraint(fields=["suite", "position"], name="prompt_unique_position_per_suite"),
        ]

    def __str__(self) -> str:
        return self.text[:80]

    def save(self, *args, **kwargs):
        self.text_sha256 = text_digest(self.text)
        super().save(*args, **kwargs)
