"""invite_link --study ID: prints a new panelist URL (settings.SITE_URL + /r/<token>/)."""

from django.core.management.base import BaseCommand, CommandError

from ratings.models import Study
from ratings.selectors import panelist_invite_url
from ratings.services import StudySetupError, panelist_create


class Command(BaseCommand):
    help = "Make a new panelist for a study and print their private link."

    def add_arguments(self, parser):
        parser.add_argument("--study", type=int, required=True, help="Study id.")
        parser.add_argument("--pseudonym", default=None, help="Default: a random pseudonym.")

    def handle(self, *args, study, pseudonym, **options):
        study_obj = Study.objects.filter(pk=study).first()
        if study_obj is None:
            raise CommandError(f"No study with id {study}.")
        try:
            panelist = panelist_create(study=study_obj, pseudonym=pseudonym)
        except StudySetupError as error:
            raise CommandError(error.message) from None
        self.stdout.write(panelist_invite_url(panelist=panelist))
