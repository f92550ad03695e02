from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_after_migrate(sender, **kwargs):
    # ratings migrates last of the apps whose permissions the roles use.
    if sender.label != "ratings":
        return
    # Not at the top: access imports the auth models, which can't load while the app registry is populated.
    from evalsite.access import roles_ensure

    try:
        roles_ensure()
    except LookupError:  # a partial migrate (an app migrated backwards): setup_roles says what is missing
        pass


class EvalsiteConfig(AppConfig):
    name = "evalsite"

    def ready(self) -> None:
        post_migrate.connect(_roles_after_migrate, dispatch_uid="evalsite_roles")
