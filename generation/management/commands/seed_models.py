from django.core.management.base import BaseCommand

from generation.services import image_model_seed_references


class Command(BaseCommand):
    help = "Register the reference systems (SD3.5 Large, FLUX.1 [dev], HunyuanImage-3.0, Z-Image Turbo, ERNIE-Image). Idempotent."

    def handle(self, *args, **options):
        for model in image_model_seed_references():
            fallback = f" (fallback: {model.fallback.slug})" if model.fallback_id else ""
            self.stdout.write(f"{model.slug:20} {model.source}{fallback}")
        self.stdout.write(self.style.SUCCESS("reference models registered"))
