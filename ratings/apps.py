from django.apps import AppConfig

from generation.signals import sweep_images_added


class RatingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ratings"

    def ready(self) -> None:
        # Here, not at the top: the tasks import the services and so the models, which need the
        # app registry that is being populated when this module is imported.
        from .tasks import sweep_images_added_received

        sweep_images_added.connect(sweep_images_added_received, dispatch_uid="ratings.study_items_sync")
