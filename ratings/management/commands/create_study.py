"""create_study --sweep ID --name NAME [--mode single|pair|both] [--ratings-per-image K]: prints the study id."""

from django.core.management.base import BaseCommand, CommandError

from generation.models import Sweep
from ratings.models import StudyMode
from ratings.services import StudySetupError, study_create, study_open


class Command(BaseCommand):
    help = "Create a study over a sweep (default criteria) and print its id."

    def add_arguments(self, parser):
        parser.add_argument("--sweep", type=int, required=True, help="Sweep id.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--mode", choices=StudyMode.values, default=StudyMode.BOTH)
        parser.add_argument("--ratings-per-image", type=int, default=3, dest="k", help="k ratings wanted per image.")
        parser.add_argument("--no-gold", action="store_true", help="No gold (attention-check) items.")
        parser.add_argument("--open", action="store_true", help="Open the study for rating right away.")

    def handle(self, *args, sweep, name, mode, k, no_gold, open, **options):
        sweep_obj = Sweep.objects.filter(pk=sweep).first()
        if sweep_obj is None:
            raise CommandError(f"No sweep with id {sweep}.")
        try:
            study = study_create(sweep=sweep_obj, name=name, mode=mode, ratings_per_item=k, gold_enabled=not no_gold)
            if open:
                study_open(study=study)
        except StudySetupError as error:
            raise CommandError(error.message) from None
        self.stdout.write(str(study.pk))
