"""export_ratings --study ID --out PATH [--bom]: the raw ratings CSV, one row per score."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ratings.models import Study
from ratings.results.export import ratings_csv_export, ratings_csv_write
from ratings.services import RatingRefused


class Command(BaseCommand):
    help = "Export every rating of a study as CSV (UTF-8, RFC 4180; --bom for spreadsheets)."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True)
        parser.add_argument("--out", required=True, help="Output file ('-' = standard output).")
        parser.add_argument("--bom", action="store_true", help="Start with a UTF-8 byte order mark (Excel).")

    def handle(self, *args, study: int, out: str, bom: bool, **options):
        obj = Study.objects.filter(pk=study).first()
        if obj is None:
            raise CommandError(f"No study with id {study}.")
        if out == "-":
            self.stdout.ending = ""  # the CSV writer ends its own lines (CRLF); the BOM must not get one
            ratings_csv_write(study=obj, out=self.stdout, bom=bom)
            return
        try:
            n = ratings_csv_export(study=obj, path=Path(out), bom=bom)
        except RatingRefused as error:
            raise CommandError(error.message) from None
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror or error}") from None
        self.stderr.write(f"exported {n} ratings of study {obj.pk} to {out}")
