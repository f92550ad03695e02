"""setup_roles: create (or repair) the staff role groups of evalsite.access.ROLES (idempotent)."""

from django.core.management.base import BaseCommand, CommandError

from evalsite.access import roles_ensure


class Command(BaseCommand):
    help = "Create the role groups (Study managers, Results viewers, …) with their permissions."

    def handle(self, *args, **options):
        try:
            groups = roles_ensure()
        except LookupError as error:
            raise CommandError(str(error)) from None
        for name, n in groups.items():
            self.stdout.write(f"{name}: {n} permissions")
