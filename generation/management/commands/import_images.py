from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.services.imports import (
    ImageImportError,
    bundle_from_path,
    bundle_set_manifest,
    sweep_for_import,
    sweep_images_import,
)


class Command(BaseCommand):
    help = ("Add images made elsewhere (an API, a closed model) to a sweep as one model's images, normalised like "
            "rendered ones. PATH is a folder or a .zip with a manifest.csv (prompt,file[,seed,seconds,cost]) or "
            "images named by prompt number (12.png). Bad input: one line per problem, nothing imported.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="A folder or a .zip file.")
        parser.add_argument("--sweep", required=True, help="The sweep's name (or id).")
        parser.add_argument("--model", required=True, help="The model's name (a new imported model unless registered).")
        parser.add_argument("--manifest", default=None, help="A manifest CSV apart from PATH (default: PATH/manifest.csv).")

    def handle(self, *args, path, sweep, model, manifest, **options):
        try:
            sweep_obj = sweep_for_import(name=sweep)
            bundle = bundle_from_path(path=Path(path))
            if manifest:
                manifest_path = Path(manifest)
                if not manifest_path.is_file():
                    raise ImageImportError([f"{manifest}: no such manifest file"])
                bundle_set_manifest(bundle=bundle, name=str(manifest_path), data=manifest_path.read_bytes())
            result = sweep_images_import(sweep=sweep_obj, model_name=model, bundle=bundle)
        except ImageImportError as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            raise CommandError(f"nothing imported: {len(exc.problems)} problem(s)") from exc
        self.stdout.write(f"imported {result['images']} images of {result['model'].name} into sweep "
                          f"{sweep_obj} (id {sweep_obj.pk})")
