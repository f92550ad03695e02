from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.services import demo_models_build, tiny_models_build


class Command(BaseCommand):
    help = ("Build the offline demo painters (pipelines that draw the prompt, with known flaws) and register "
            "them; --tiny builds the tiny random-weight pipelines of the real architectures instead. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="Where to build them (default: MODEL_DIR).")
        parser.add_argument("--rebuild", action="store_true", help="Rebuild even if a model directory is complete.")
        parser.add_argument("--tiny", action="store_true",
                            help="The tiny random-weight SD3/FLUX/Z-Image/ERNIE/Hunyuan-style pipelines (loading tests).")

    def handle(self, *args, dir=None, rebuild=False, tiny=False, **options):
        build = tiny_models_build if tiny else demo_models_build
        for model, built in build(model_dir=dir or settings.MODEL_DIR, rebuild=rebuild):
            self.stdout.write(f"{model.slug:20} {'built' if built else 'kept '} {model.source}")
        self.stdout.write(self.style.SUCCESS("demo models registered"))
