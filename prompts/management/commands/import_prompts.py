"""import_prompts PATH --suite NAME [--format auto|csv|tsv|json|jsonl|txt] [--replace]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from prompts.importers import FORMATS
from prompts.services import PromptFileInvalid, prompt_file_read, prompt_suite_import


class Command(BaseCommand):
    help = "Import a prompt file (CSV/TSV with header, JSON array, JSON Lines, or one prompt per line) as a suite."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--suite", required=True, help="name of the new suite")
        parser.add_argument("--format", dest="fmt", default="auto", choices=("auto", *FORMATS))
        parser.add_argument(
            "--replace",
            action="store_true",
            help="replace the prompts of an existing suite of that name (refused once sweeps use it; "
            "identical prompts are left as they are)",
        )

    def handle(self, *args, path, suite, fmt, replace, **options):
        try:
            data, size = prompt_file_read(path=path)
        except OSError as exc:
            raise CommandError(f"{path}:0: can't read the file: {exc.strerror or exc}") from None
        try:
            result = prompt_suite_import(
                path_or_name=path, data=data, size=size, suite_name=suite, fmt=fmt, replace=replace
            )
        except PromptFileInvalid as exc:
            for line in [w.format(path) for w in exc.warnings] + exc.lines(path):
                self.stderr.write(line)
            raise CommandError(f"{len(exc.problems)} problem(s) in {path}; nothing was imported") from None
        for warning in result.warnings:
            self.stderr.write(warning.format(path))
        if result.unchanged:
            self.stdout.write(f"suite {result.suite.name} already holds these {result.count} prompts; nothing changed")
        else:
            self.stdout.write(f"imported {result.count} prompts into suite {result.suite.name}")
