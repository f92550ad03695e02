from django.apps import AppConfig


class ResultsConfig(AppConfig):
    """Results: a package of its own inside ratings (reads ratings, never imported by them).

    An app of its own (label ``results``) so its snapshot table and its receiver live here:
    ratings only announce that their inputs changed (``ratings.signals``); results listens.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "ratings.results"
    label = "results"
    verbose_name = "Results"

    def ready(self) -> None:
        # Here, not at the top: the receivers import the models, which need the app registry ready.
        from . import receivers  # noqa: F401  (connects the snapshot refresh to ratings' change signal)
