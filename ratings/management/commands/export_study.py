"""export_study --study ID --out PATH: one study (rows and images) as a zip another installation imports."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ratings.archive import study_export
from ratings.models import Study


class Command(BaseCommand):
    help = "Write a study with its sweep, prompts, models, images, panelists and ratings to a zip archive."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True)
        parser.add_argument("--out", required=True, help="The archive to write (a .zip).")

    def handle(self, *args, study: int, out: str, **options):
        obj = Study.objects.filter(pk=study).first()
        if obj is None:
            raise CommandError(f"No study with id {study}.")
        try:
            summary = study_export(study=obj, path=Path(out))
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror or error}") from None
        rows = sum(summary.counts.values())
        self.stdout.write(f"exported study {obj.pk} ({obj.name}): {rows} rows, {summary.images} images to {out}")
