"""Fingerprint of every results output of one seeded simulated study (a refactor must not change them).

    python scripts/results_fingerprint.py --out DIR [--study-name NAME]

Against the database in DATABASE_URL: creates (once) a study over a rendered sweep of 4 models ×
10 prompts (tests/factories.make_sweep, OCR results set on its text images) filled by ``ratings_simulate(seed=11)``, with one
panelist excluded, then writes the leaderboard CSV (view and command), the ``leaderboard`` table,
the raw ratings CSV and the leaderboard page (its "computed" time blanked) into DIR and prints the
sha256 of each. Run it before and after a change against the same database: the files must be
identical. The study is reused by name, so the ratings (ids, times, pseudonyms) stay the same.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
os.environ.setdefault("EVALSITE_RESULTS_COMPUTE_ON_READ", "1")  # the outputs themselves, not "computing…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--study-name", default="fingerprint-study")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from ratings.models import Study

    call_command("migrate", verbosity=0)
    study = Study.objects.filter(name=args.study_name).first()
    if study is None:
        from generation.models import Generation
        from ratings.results.services import ratings_simulate
        from ratings.services import panelist_exclude, study_create
        from tests.factories import make_sweep

        # the prompts' categories as first fingerprinted (the seven without text were "Photo")
        sweep, *_ = make_sweep(n_models=4, text_prompts=3, prompt_kwargs=[{}] * 3 + [{"category": "Photo"}] * 7)
        for i, gen in enumerate(Generation.objects.filter(sweep=sweep).exclude(prompt__expected_text="").order_by("id")):
            gen.ocr_cer, gen.ocr_all_words = (i * 7 % 10) / 10, i % 3 == 0  # OCR results, as the worker stores them
            gen.save(update_fields=["ocr_cer", "ocr_all_words"])
        study = study_create(sweep=sweep, name=args.study_name, mode="both", ratings_per_item=3, gold_enabled=True)
        ratings_simulate(study=study, panelists=9, seed=11)
        panelist_exclude(panelist=study.panelists.order_by("id").first())
        print(f"created study {study.pk}")
    study = Study.objects.select_related("sweep").get(pk=study.pk)

    from django.contrib.auth import get_user_model

    setup_test_environment()
    staff, _ = get_user_model().objects.get_or_create(username="fingerprint-staff",
                                                      defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(staff)
    cache.clear()
    outputs: dict[str, bytes] = {}
    outputs["leaderboard.csv"] = b"".join(client.get(f"/studies/{study.pk}/leaderboard.csv").streaming_content)
    outputs["ratings.csv"] = b"".join(client.get(f"/studies/{study.pk}/ratings.csv").streaming_content)
    page = client.get(f"/studies/{study.pk}/leaderboard/").content.decode()
    page = re.sub(r"computed \S+", "computed -", page)
    page = re.sub(r"As of [^(<]* ago", "As of - ago", page)  # the snapshot's age
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value="-"', page)
    page = re.sub(r'"X-CSRFToken": "[^"]+"', '"X-CSRFToken": "-"', page)
    outputs["leaderboard.html"] = page.encode()
    for fmt in ("csv", "table"):
        buf = io.StringIO()
        call_command("leaderboard", study=study.pk, format=fmt, stdout=buf)
        outputs[f"leaderboard-command.{fmt}"] = buf.getvalue().encode()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (args.out / name).write_bytes(data)
        print(f"{hashlib.sha256(data).hexdigest()}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
