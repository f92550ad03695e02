"""import_study PATH: create a study from an export_study archive; prints the new study id."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ratings.archive import ArchiveInvalid, study_import


class Command(BaseCommand):
    help = "Import a study archive written by export_study (new ids; invite links are issued anew)."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path: str, **options):
        try:
            summary = study_import(path=Path(path))
        except ArchiveInvalid as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}") from None
        rows = sum(summary.counts.values())
        self.stderr.write(f"imported study {summary.study_name!r}: {rows} rows, {summary.images} images")
        self.stdout.write(str(summary.study_id))
