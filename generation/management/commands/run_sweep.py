import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.models import ImageFormat, ImageModel, Sweep
from generation.selectors import sweep_progress
from generation.services import SweepInvalid, sweep_create, sweep_reconcile, sweep_status_refresh
from prompts.models import PromptSuite


class Command(BaseCommand):
    help = "Render a suite with models (suite × models × seeds) on the GPU workers; prints the sweep id."

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, help="Prompt suite name.")
        parser.add_argument("--models", required=True, help="Comma-separated model slugs.")
        parser.add_argument("--seeds", type=int, default=1, help="Seeds 0..N-1 for every prompt and model (default 1).")
        parser.add_argument("--width", type=int, default=None, help="Canvas width (default: 1024 or the largest native width of the models).")
        parser.add_argument("--height", type=int, default=None, help="Canvas height (default: 1024 or the largest native height of the models).")
        parser.add_argument("--format", default=ImageFormat.PNG, choices=ImageFormat.values)
        parser.add_argument("--wait", action="store_true", help="Show progress per model until the sweep is done.")
        parser.add_argument("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")

    def handle(self, *args, suite, models, seeds, width, height, format, wait, timeout, **options):
        suite_obj = PromptSuite.objects.filter(name=suite).first()
        if suite_obj is None:
            known = ", ".join(PromptSuite.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"unknown suite {suite!r} (known: {known})")
        slugs = [s.strip() for s in models.split(",") if s.strip()]
        found = {m.slug: m for m in ImageModel.objects.filter(slug__in=slugs)}
        missing = [s for s in slugs if s not in found]
        if missing or not slugs:
            known = ", ".join(ImageModel.objects.values_list("slug", flat=True)) or "none (run seed_models)"
            raise CommandError(f"unknown model slug(s) {', '.join(missing) or '(none given)'} (known: {known})")
        if seeds < 1:
            raise CommandError("--seeds must be at least 1")
        try:
            sweep = sweep_create(
                suite=suite_obj, image_models=[found[s] for s in slugs], seeds=seeds,
                canvas_width=width, canvas_height=height, image_format=format,
            )
        except SweepInvalid as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(str(sweep.pk))
        self.stdout.flush()
        if wait:
            self._wait(sweep, timeout)

    def _wait(self, sweep: Sweep, timeout: float | None) -> None:
        started = time.monotonic()
        bars: dict[int, tqdm] = {}
        try:
            while True:
                sweep_reconcile(sweep=sweep)
                rows = sweep_progress(sweep=sweep)
                for position, row in enumerate(rows):
                    bar = bars.get(row["model_id"])
                    if bar is None:
                        bar = bars[row["model_id"]] = tqdm(
                            total=row["total"], desc=row["model_name"][:28], position=position, unit="img",
                            file=self.stderr._out, leave=True, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
                        )
                    bar.n = row["done"] + row["failed"]
                    rate, eta = row["images_per_second"], row["eta_seconds"]
                    bar.set_postfix_str(
                        f"failed {row['failed']}"
                        + (f", {rate:.2f} img/s" if rate else "")
                        + (f", ETA {eta:.0f} s" if eta else ""),
                        refresh=False,
                    )
                    bar.refresh()
                if all(row["finished"] for row in rows):
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    raise CommandError(f"sweep {sweep.pk} not finished after {timeout:.0f} s (is a GPU worker running?)")
                time.sleep(1.0)
        finally:
            for bar in bars.values():
                bar.close()
        status = sweep_status_refresh(sweep=sweep)
        failed = sum(row["failed"] for row in rows)
        if failed:
            self.stderr.write(f"sweep {sweep.pk} finished: {failed} image(s) failed (see /sweeps/{sweep.pk}/)")
        else:
            self.stderr.write(f"sweep {sweep.pk} {status}")
