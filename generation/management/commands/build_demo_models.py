from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.services import demo_models_build


class Command(BaseCommand):
    help = "Build the tiny offline demo pipelines (random weights, local tokenizers) and register them. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="Where to build them (default: MODEL_DIR).")
        parser.add_argument("--rebuild", action="store_true", help="Rebuild even if a model directory is complete.")

    def handle(self, *args, dir=None, rebuild=False, **options):
        for model, built in demo_models_build(model_dir=dir or settings.MODEL_DIR, rebuild=rebuild):
            self.stdout.write(f"{model.slug:20} {'built' if built else 'kept '} {model.source}")
        self.stdout.write(self.style.SUCCESS("demo models registered"))
