"""import_ratings at scale: a simulated 100,000-rating file (singles and pairs) into a throwaway PostgreSQL DB.

    python benchmarks/import_ratings.py [--ratings 100000] [--pg postgres://postgres@127.0.0.1:5432] [--keep]

Writes a CSV like a spreadsheet export (rater, model, prompt, criterion, score, category, pair, side:
half the ratings single images, half side-by-side pairs), creates a fresh database
(evalsite_import_<pid>), migrates it, then times the ``import_ratings`` command as a user runs it
(a subprocess: Django start-up included) and, in this process, the service's phases (read and check
the file; write the study) on a second copy, then one leaderboard computation of the imported study.
Prints a markdown table and drops the database. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ["FLUX.1 [dev]", "Stable Diffusion 3.5 Large", "Z-Image Turbo", "ERNIE-Image", "HunyuanImage-3.0"]
CRITERIA = ["prompt_accuracy", "photorealism"]


def write_file(path: Path, *, n_ratings: int, seed: int = 0) -> dict[str, int]:
    """Half single ratings, half pairs; 20 raters; as many prompts as the count needs (each image rated 10x)."""
    rng = random.Random(seed)
    raters = [f"rater-{i:02d}" for i in range(20)]
    quality = {m: rng.uniform(4, 7) for m in MODELS}
    lenient = {r: rng.gauss(0, 0.7) for r in raters}
    per_prompt = len(MODELS) * len(CRITERIA) * 10  # single ratings of one prompt (10 raters per image)
    n_prompts = max(1, n_ratings // 2 // per_prompt)
    counts = {"rows": 0, "pairs": 0, "prompts": n_prompts}

    def score(model: str, rater: str, difficulty: float) -> int:
        return min(10, max(1, round(quality[model] + difficulty + lenient[rater] + rng.gauss(0, 1.3))))

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rater", "model", "prompt", "criterion", "score", "category", "pair", "side"])
        for p in range(n_prompts):
            prompt, category = f"prompt {p}: a scene with {p % 7} objects", ("Text", "Photo", "Art")[p % 3]
            difficulty = rng.gauss(0, 0.8)
            for model in MODELS:
                for rater in rng.sample(raters, 10):
                    for c in CRITERIA:
                        w.writerow([rater, model, prompt, c, score(model, rater, difficulty), category, "", ""])
                        counts["rows"] += 1
            # pairs: as many rows again, each answer = 2 sides x criteria
            for _ in range(per_prompt // (2 * len(CRITERIA))):
                a, b = rng.sample(MODELS, 2)
                rater = rng.choice(raters)
                pid = f"p{counts['pairs']}"
                counts["pairs"] += 1
                for c in CRITERIA:
                    w.writerow([rater, a, prompt, c, score(a, rater, difficulty), category, pid, "left"])
                    w.writerow([rater, b, prompt, c, score(b, rater, difficulty), category, pid, "right"])
                    counts["rows"] += 2
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get("SCALE_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args()

    import psycopg

    db_name = f"evalsite_import_{os.getpid()}"
    db_url = f"{args.pg}/{db_name}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalsite.settings")
    results: list[tuple[str, str]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ratings.csv"
            start = time.perf_counter()
            counts = write_file(path, n_ratings=args.ratings)
            results.append(("file written", f"{counts['rows']:,} rows ({counts['pairs']:,} pairs, "
                                            f"{counts['prompts']:,} prompts, {len(MODELS)} models, 20 raters), "
                                            f"{path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - start:.1f} s"))
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)

            env = {**os.environ, "DATABASE_URL": db_url}
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "manage.py", "import_ratings", str(path), "--study-name", "bench"],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            command_s = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(proc.stderr)
            results.append(("`import_ratings` command (subprocess, Django start-up included)",
                            f"**{command_s:.1f} s** → study {proc.stdout.strip()}"))

            from django.db import transaction

            from ratings.results.selectors import leaderboard_compute
            from ratings.services import imports

            start = time.perf_counter()
            data, size = imports.ratings_file_read(path=path)
            rows, gold, problems = imports.rating_rows_parse(text=data.decode("utf-8-sig"), fmt="csv")
            check_s = time.perf_counter() - start
            assert not problems, problems[:3]
            start = time.perf_counter()
            with transaction.atomic():
                result = imports._study_write(rows=rows, gold=gold, study_name="bench 2", filename=path.name, fmt="csv",
                                              created_by=None)
                write_s = time.perf_counter() - start
            commit_s = time.perf_counter() - start - write_s
            results.append(("service: read + check every row", f"{check_s:.2f} s"))
            results.append(("service: write the study (COPY on PostgreSQL, one transaction)",
                            f"{write_s:.2f} s ({result.n_ratings:,} ratings, {result.n_pairs:,} pair answers)"))
            results.append(("service: commit (deferred foreign-key checks)", f"{commit_s:.2f} s"))
            start = time.perf_counter()
            board = leaderboard_compute(study=result.study)
            results.append(("leaderboard of the imported study (compute)",
                            f"{time.perf_counter() - start:.2f} s ({board['n_ratings_used']:,} ratings)"))
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        else:
            print(f"kept {db_url}")
    load = os.getloadavg()
    print(f"\n### import_ratings at {args.ratings:,} ratings (PostgreSQL, this machine: {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} at the end)\n")
    print("| step | result |\n|---|---|")
    for step, value in results:
        print(f"| {step} | {value} |")


if __name__ == "__main__":
    main()
