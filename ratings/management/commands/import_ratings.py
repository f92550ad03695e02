"""import_ratings PATH --study-name NAME [--format auto|csv|tsv]: ratings collected elsewhere become a study."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ratings.services.imports import FORMATS, RatingFileInvalid, ratings_file_read, ratings_import


class Command(BaseCommand):
    help = ("Import ratings made elsewhere (CSV/TSV: rater, model, prompt, criterion, score[, category, pair, side, "
            "seed]) as a new, closed study; prints its id.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--study-name", required=True, dest="study_name")
        parser.add_argument("--format", dest="fmt", default="auto", choices=("auto", *FORMATS))

    def handle(self, *args, path, study_name, fmt, **options):
        try:
            data, size = ratings_file_read(path=path)
        except OSError as exc:
            raise CommandError(f"{path}:0: can't read the file: {exc.strerror or exc}") from None
        try:
            result = ratings_import(path_or_name=path, data=data, size=size, study_name=study_name, fmt=fmt)
        except RatingFileInvalid as exc:
            for line in exc.lines(path):
                self.stderr.write(line)
            raise CommandError(f"{len(exc.problems)} problem(s) in {path}; nothing was imported") from None
        gold = f", {result.n_gold_skipped} attention-check rows left out" if result.n_gold_skipped else ""
        self.stderr.write(
            f"imported {result.n_ratings} ratings ({result.n_models} models, {result.n_models_created} of them new, "
            f"{result.n_prompts} prompts, {result.n_raters} raters, {result.n_pairs} pairs{gold}) "
            f"into study {result.study.pk} {result.study.name!r}"
        )
        self.stdout.write(str(result.study.pk))
