"""profile_vram --model SLUG [--cards 8,12,16,24,48,80] [--try bf16,nf4,...] [--no-verify] [--json PATH]

Runs in this process (on a GPU host: it needs the CUDA GPU, not a worker) and stores the profile, as
the model page's "Profile VRAM on a GPU worker" button does through a worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.engine.profile import CARD_CLASSES_GB, SETTING_NAMES
from generation.models import ImageModel, VramProfileStatus
from generation.selectors import vram_profile_fits
from generation.services import (
    VramProfileInvalid,
    vram_cards_parse,
    vram_profile_create,
    vram_profile_run,
    vram_settings_check,
)


class Command(BaseCommand):
    help = ("Find, per card class, the fastest setting a model renders with (bf16, 8-bit, NF4, offload, ...) and "
            "its s/image and peak VRAM, on this machine's GPU; prints a table per card and stores the profile.")

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="Model slug.")
        parser.add_argument("--cards", default=",".join(map(str, CARD_CLASSES_GB)),
                            help="Card classes in GB, comma-separated (default %(default)s).")
        parser.add_argument("--try", dest="setting_names", default="",
                            help=f"Settings to try, comma-separated (default all: {', '.join(SETTING_NAMES)}); "
                                 'quote names with spaces: --try "bf16,nf4,model offload". '
                                 "(Not --settings: Django's own option names the settings module.)")
        parser.add_argument("--no-verify", action="store_true",
                            help="Predict each card's setting from the uncapped peaks instead of rendering under its "
                                 "cap (faster; the table marks the rows predicted).")
        parser.add_argument("--json", dest="json_path", default="", help="Also write the raw report to this file.")

    def handle(self, *args, model: str, cards: str, setting_names: str, no_verify: bool, json_path: str | None,
               **options) -> None:
        image_model = ImageModel.objects.filter(slug=model).first()
        if image_model is None:
            known = ", ".join(ImageModel.objects.values_list("slug", flat=True)) or "none (run seed_models)"
            raise CommandError(f"unknown model slug {model!r} (known: {known})")
        out = Path(json_path) if json_path else None
        if out is not None and not out.parent.is_dir():
            raise CommandError(f"--json: {out.parent} is not a directory")
        try:
            names = vram_settings_check(names=[n.strip() for n in setting_names.split(",") if n.strip()])
            profile = vram_profile_create(image_model=image_model, cards=vram_cards_parse(text=cards),
                                          setting_names=names, verify=not no_verify)
        except VramProfileInvalid as exc:
            raise CommandError(exc.message) from None
        seen: set[str] = set()

        def progress(report: dict) -> None:
            for name, result in report["settings"].items():
                if name not in seen:
                    seen.add(name)
                    self.stderr.write(f"{name}: " + (f"{result['seconds']:.2f} s/image, {result['peak_allocated_gib']:.2f} "
                                                     f"GiB peak allocated" if result.get("ok") else result.get("error", "failed")))

        ran = vram_profile_run(profile_id=profile.pk, on_result=progress)
        if ran is None:  # the row went away under it
            raise CommandError(f"profile_vram: profile {profile.pk} was deleted while it ran")
        profile = ran
        if profile.status != VramProfileStatus.DONE:
            error = profile.error or f"the profile ended {profile.status}"
            raise CommandError(error if error.startswith("profile_vram") else f"profile_vram: {error}")
        if out is not None:
            out.write_text(json.dumps(profile.report, indent=2) + "\n", encoding="utf-8")
        self._table(profile)

    def _table(self, profile) -> None:
        report = profile.report
        self.stdout.write(f"{profile.image_model.name} on {report['gpu_name']} ({report['width']}x{report['height']}, "
                          f"{report['steps']} steps), card = GB minus {report['context_gib']} GiB CUDA context")
        self.stdout.write(f"{'card':>6}  {'setting':<22} {'s/image':>8}  {'peak VRAM (alloc/reserved GiB)':>30}")
        for row in vram_profile_fits(profile=profile):
            if row["setting"] is None:
                self.stdout.write(f"{row['card_gb']:>4g}GB  {'does not fit':<22} {'':>8}  {'':>30}")
                continue
            mark = " (predicted)" if row["predicted"] else ""
            peak = f"{row['peak_allocated_gib']:.2f} / {row['peak_reserved_gib']:.2f}"
            self.stdout.write(f"{row['card_gb']:>4g}GB  {row['setting']:<22} {row['seconds']:>8.2f}  {peak:>30}{mark}")
        smallest = report.get("min_card")
        self.stdout.write("Min VRAM: " + (f"{smallest['card_gb']:g} GB ({smallest['setting']})" if smallest
                                          else "does not fit on any card profiled"))
        if report.get("cards_skipped"):
            skipped = report["cards_skipped"]
            self.stdout.write(f"not profiled: {', '.join(f'{c:g}' for c in skipped['cards'])} GB ({skipped['why']})")
        self.stdout.write(f"stored as VRAM profile {profile.pk}")
