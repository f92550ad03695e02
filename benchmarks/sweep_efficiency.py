"""Sweep efficiency on a real GPU (issue 3 §6), everything in one run.

1. Sweep overhead: a sweep of 3 models x N prompts (default 16) through the real worker
   (`celery -A evalsite worker -Q gpu --pool=solo -c 1`, embedded SQLite + filesystem
   broker, images normalized and saved) against a plain diffusers loop over the same
   prompts, seeds and settings (from_pretrained + .to("cuda") + pipe(...) per prompt).
   Target: sweep wall time <= 1.05 x (plain loop incl. one load per model).
   The models are the FLUX.1 [dev], SD3.5 Large and Z-Image Turbo architectures at their
   real width, token counts, steps and 1024^2, with fewer blocks (~1 s/image; random
   weights) so the run fits the GPU time we have. Fewer blocks make the fixed per-image
   overhead count *more*, not less.
2. Per-image time, engine vs plain pipe(...): from the same run (Generation.seconds vs the
   plain loop's per-image times). Target <= 1.02x.
3. Fast mode on the full-size FLUX.1 [dev] architecture, 1024^2, 28 steps: plain bf16 vs
   the engine's opt-in fast mode (regional compile_repeated_blocks, default inductor mode).
   Target >= 1.5x per image; reports compile seconds and the sweep size where it pays.

    python benchmarks/sweep_efficiency.py --work /tmp/sweep-bench --out $OUT   # on an H100/H200
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import fullsize_models as fm  # noqa: E402

PROMPT_POOL = [
    "A red fox standing in fresh snow at dawn, photorealistic",
    "A neon sign that says OPEN above a rainy street at night",
    "A bowl of ramen on a wooden table, studio lighting",
    "An astronaut riding a horse on the moon, 35mm photo",
    "A watercolor painting of a lighthouse in a storm",
    "A close-up of a hummingbird drinking from a flower",
    "A chalkboard menu that reads 'Soup of the day: tomato'",
    "A futuristic city skyline at sunset with flying cars",
    "A cat wearing a tiny knitted hat, soft window light",
    "An old map of an imaginary island with a compass rose",
    "A glass of orange juice on a sunny kitchen counter",
    "A mountain lake reflecting snowy peaks, early morning",
    "A robot reading a newspaper in a Paris cafe",
    "A hand-lettered poster saying 'Keep going'",
    "A macro photo of dew drops on a spider web",
    "A vintage red bicycle leaning against a brick wall",
    "A plate of sushi arranged like a flower",
    "A foggy forest path with sun rays",
    "A street market in Marrakech at dusk",
    "A paper boat floating on a puddle after rain",
]
SEED = 42
GIB = 2**30

# name, slug, kind, pipeline class, steps, guidance, extra params (the reference settings)
SWEEP_MODELS = [
    ("FLUX.1-dev arch (4+8 blocks)", "bench-flux", "flux", "FluxPipeline", 28, 3.5, {"max_sequence_length": 512}),
    ("SD3.5-Large arch (8 blocks)", "bench-sd35", "sd3", "StableDiffusion3Pipeline", 28, 3.5,
     {"max_sequence_length": 256}),
    ("Z-Image-Turbo arch (6 blocks)", "bench-zimage", "zimage", "ZImagePipeline", 9, 0.0,
     {"max_sequence_length": 512}),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cuda_free() -> None:
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def build_models(work: Path) -> dict[str, Path]:
    t5 = fm.build_shared_t5(work / "t5-medium", medium=True, seed=10)
    paths = {}
    for i, (_, slug, kind, *_rest) in enumerate(SWEEP_MODELS):
        paths[slug] = fm.build(kind, work / slug, medium=True, seed=20 + i, t5_dir=None if kind == "zimage" else t5)
    return paths


def plain_loop(paths: dict[str, Path], prompts: list[str]) -> dict:
    """What a user would write by hand, for the same prompts, seeds and settings."""
    import diffusers

    per_model = {}
    total_start = time.perf_counter()
    for _, slug, _, cls_name, steps, guidance, extra in SWEEP_MODELS:
        t0 = time.perf_counter()
        pipe = getattr(diffusers, cls_name).from_pretrained(paths[slug], dtype=torch.bfloat16).to("cuda")
        pipe.set_progress_bar_config(disable=True)
        torch.cuda.synchronize()
        load_s = time.perf_counter() - t0
        seconds = []
        for prompt in prompts:
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            pipe(prompt=prompt, num_inference_steps=steps, guidance_scale=guidance, width=1024, height=1024,
                 generator=torch.Generator("cpu").manual_seed(SEED), **extra)
            torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t1)
        per_model[slug] = {"load_s": round(load_s, 2), "images_s": round(sum(seconds), 2),
                           "first_s": round(seconds[0], 3), "median_s": round(statistics.median(seconds[1:]), 4),
                           "mean_s": round(statistics.mean(seconds), 4)}
        log(f"plain {slug}: {per_model[slug]}")
        del pipe
        cuda_free()
    return {"wall_s": round(time.perf_counter() - total_start, 2), "models": per_model}


def site_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "evalsite.settings",
        "EVALSITE_DATA_DIR": str(work / "site"),
        "DATABASE_URL": f"sqlite:///{work / 'site' / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    })
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def worker_sweep(work: Path, paths: dict[str, Path], prompts: list[str], models_table=None, canvas: int = 1024) -> dict:
    """The product path: import the suite, register the models, sweep_create, a real Celery worker."""
    site = work / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    env = site_env(work)
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "EVALSITE_DATA_DIR", "DATABASE_URL",
                                           "CELERY_BROKER_URL")})
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v", "0"], check=True, env=env, cwd=ROOT)
    prompt_file = site / "bench.txt"
    prompt_file.write_text("\n".join(prompts) + "\n")
    subprocess.run(manage + ["import_prompts", str(prompt_file), "--suite", "bench"], check=True, env=env, cwd=ROOT)

    import django

    django.setup()
    from generation.models import Generation, ImageModel
    from generation.selectors import sweep_totals
    from generation.services import sweep_create
    from prompts.models import PromptSuite

    models = []
    for name, slug, _, cls_name, steps, guidance, extra, *size in models_table or SWEEP_MODELS:
        width, height = size or (canvas, canvas)
        models.append(ImageModel.objects.create(
            slug=slug, name=name, source=str(paths[slug]), pipeline_class=cls_name,
            dtype="bfloat16" if torch.cuda.is_available() else "float32",
            num_inference_steps=steps, guidance_scale=guidance, width=width, height=height, extra_params=extra,
        ))
    worker_log = open(site / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-Q", "gpu", "--pool=solo", "-c", "1",
         "--loglevel=INFO", "-n", "bench@%h"],
        env=env, cwd=ROOT, stdout=worker_log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "ready." not in (site / "worker.log").read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + (site / "worker.log").read_text()[-3000:])
            time.sleep(0.2)
        suite = PromptSuite.objects.get(name="bench")
        # A worker is long-lived: it imports torch/diffusers and creates its Engine once, on its
        # first chunk, not once per sweep. Pay that here with a tiny model so the timed sweep
        # measures what every later sweep costs.
        from generation.engine import tiny

        entry = next(e for e in tiny.TINY_MODELS if e["kind"] == "flux")
        tiny.build_tiny_pipeline(kind="flux", path=work / "warm-tiny", seed=entry["seed"])
        warm_model = ImageModel.objects.create(
            slug="warm-tiny", name="warm-up (tiny)", source=str(work / "warm-tiny"), pipeline_class="FluxPipeline",
            dtype="float32", num_inference_steps=2, guidance_scale=3.5, width=48, height=48,
            extra_params={"max_sequence_length": 32})
        t_warm = time.perf_counter()
        warm = sweep_create(suite=suite, image_models=[warm_model], seeds=[SEED], canvas_width=canvas,
                            canvas_height=canvas, image_format="png")
        while not sweep_totals(sweep=warm)["finished"]:
            if worker.poll() is not None:
                raise RuntimeError("worker died:\n" + (site / "worker.log").read_text()[-3000:])
            time.sleep(0.1)
        warm_s = time.perf_counter() - t_warm
        log(f"worker warm ({warm_s:.1f}s: imports, Engine, a tiny sweep); creating the timed sweep")
        t0 = time.perf_counter()
        sweep = sweep_create(suite=suite, image_models=models, seeds=[SEED], canvas_width=canvas,
                             canvas_height=canvas, image_format="png")
        while True:
            totals = sweep_totals(sweep=sweep)
            if totals["finished"]:
                break
            if worker.poll() is not None:
                raise RuntimeError("worker died:\n" + (site / "worker.log").read_text()[-3000:])
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
    per_model = {}
    for model in models:
        rows = list(Generation.objects.filter(sweep=sweep, model=model).order_by("prompt__position"))
        seconds = [g.seconds for g in rows if g.seconds is not None]
        per_model[model.slug] = {
            "done": sum(g.status == "done" for g in rows), "failed": sum(g.status == "failed" for g in rows),
            "median_s": round(statistics.median(seconds), 4) if seconds else None,
            "mean_s": round(statistics.mean(seconds), 4) if seconds else None,
            "peak_alloc_gib": round(max(g.peak_vram_allocated or 0 for g in rows) / GIB, 2),
            "peak_reserved_gib": round(max(g.peak_vram_reserved or 0 for g in rows) / GIB, 2),
            "gpu": rows[0].gpu_name if rows else "", "errors": sorted({g.error for g in rows if g.error})[:3],
        }
        log(f"sweep {model.slug}: {per_model[model.slug]}")
    events = [line for line in (site / "worker.log").read_text().splitlines() if "load" in line.lower()][:20]
    return {"wall_s": round(wall, 2), "worker_warm_s": round(warm_s, 2), "totals": {k: totals[k] for k in ("done", "failed", "total")},
            "models": per_model, "worker_log_load_lines": events}


def _psnr(a, b) -> float:
    import numpy as np

    x, y = (np.asarray(i, dtype=np.float64) for i in (a, b))
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else round(float(10 * np.log10(255.0**2 / mse)), 2)


def fast_mode(work: Path, n: int, deadline: float, variants: list[str], small_t5: bool = False,
              out_dir: Path | None = None) -> dict:
    """Full-size FLUX.1 [dev] architecture, 1024^2, 28 steps: plain bf16 vs fast mode, all via the engine.

    Variants: plain bf16; fast = regional compile (compile_repeated_blocks, default mode);
    fast+fp8 = torchao dynamic FP8 on the transformer's Linear layers, then the same compile.
    Image closeness to plain bf16 (same prompt and seed) is reported as PSNR.
    """
    from generation.engine import Engine, ModelSpec, RenderRequest

    t5 = work / "t5-xxl"
    flux = work / "flux1-dev"
    t0 = time.perf_counter()
    fm.build_shared_t5(t5, seed=1, medium=small_t5)
    fm.build("flux", flux, seed=3, t5_dir=t5)
    build_s = time.perf_counter() - t0
    engine = Engine(device="cuda")
    base = dict(slug="flux1-dev-arch", source=str(flux), pipeline_class="FluxPipeline", dtype="bfloat16",
                num_inference_steps=28, guidance_scale=3.5, width=1024, height=1024,
                extra_params={"max_sequence_length": 512})
    requests = [RenderRequest(key=str(i), prompt=PROMPT_POOL[i], seed=SEED + i) for i in range(n)]
    out: dict = {"build_s": round(build_s, 1), "t5": "2-layer T5 (d_model 4096)" if small_t5 else "T5-XXL"}
    plain_images = []
    all_variants = (("plain", False, {}), ("fast", True, {}), ("fast_fp8", True, {"fast_mode_fp8": True}))
    for label, fast, load_params in all_variants:
        if label not in variants:
            continue
        log(f"fast-mode {label}: loading, warming up (compiles when fast)")
        if time.monotonic() > deadline:
            out[label] = {"skipped": "out of GPU time for this run"}
            continue
        spec = ModelSpec(**base, fast_mode=fast, load_params=load_params)
        try:
            loaded = engine.load(spec)
            outcomes = list(engine.render(spec, requests))
        except Exception as exc:  # noqa: BLE001 - report the variant as failed, keep the others
            traceback.print_exc()
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
            engine.evict_all()
            continue
        seconds = [o.seconds for o in outcomes]
        out[label] = {"load_s": round(loaded.load_seconds, 2), "warmup_s": round(loaded.warmup_seconds, 2),
                      "notes": loaded.notes, "fast_mode_used": loaded.fast_mode_used,
                      "s_per_image": [round(s, 3) for s in seconds], "median_s": round(statistics.median(seconds), 3),
                      "peak_alloc_gib": round(max(o.peak_vram_allocated for o in outcomes) / GIB, 2),
                      "gpu": outcomes[0].gpu_name}
        if label == "plain":
            plain_images = [o.image for o in outcomes]
        elif plain_images:
            out[label]["psnr_vs_plain_db"] = [_psnr(a, o.image) for a, o in zip(plain_images, outcomes, strict=True)]
        log(f"fast-mode {label}: {out[label]}")
        if out_dir:
            (out_dir / "fast_mode_partial.json").write_text(json.dumps(out, indent=2, default=str))
        del loaded, outcomes
        engine.evict_all()
    plain = out.get("plain", {}).get("median_s")
    for label in ("fast", "fast_fp8"):
        variant = out.get(label, {})
        if plain and variant.get("median_s"):
            variant["speedup"] = round(plain / variant["median_s"], 3)
            # Compile cost = this warm-up beyond the plain warm-up (both are 2-step calls).
            variant["compile_s"] = round(variant["warmup_s"] - out["plain"]["warmup_s"], 1)
            gain = plain - variant["median_s"]
            variant["pays_after_images"] = int(variant["compile_s"] / gain) + 1 if gain > 0 else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sweep-bench"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "var/sweep-bench")))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--fast-images", type=int, default=3)
    parser.add_argument("--skip-fast", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--variants", default="plain,fast",
                        help="fast-mode variants: plain,fast,fast_fp8 (fp8 needs torchao and a Hopper GPU)")
    parser.add_argument("--small-t5", action="store_true",
                        help="fast-mode FLUX with a 2-layer T5 (transformer unchanged; saves GPU time)")
    parser.add_argument("--budget-s", type=float, default=500, help="skip fast-mode variants after this")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="check the worker path on a CPU with the tiny demo models (no timings worth reading)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.cpu_smoke:
        cpu_smoke(args.work, PROMPT_POOL[: args.prompts])
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    prompts = PROMPT_POOL[: args.prompts]
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "prompts": len(prompts)}

    def save() -> None:
        (args.out / "sweep_efficiency.json").write_text(json.dumps(results, indent=2, default=str))

    if not args.skip_sweep:
        try:
            t0 = time.perf_counter()
            paths = build_models(args.work)
            results["build_s"] = round(time.perf_counter() - t0, 1)
            log(f"built sweep models in {results['build_s']}s")
            results["plain"] = plain_loop(paths, prompts)
            save()
            results["sweep"] = worker_sweep(args.work, paths, prompts)
            save()
            for path in paths.values():
                shutil.rmtree(path, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            results["sweep_error"] = f"{type(exc).__name__}: {exc}"
        save()
    if not args.skip_fast:
        try:
            results["fast_mode"] = fast_mode(args.work, args.fast_images, deadline=started + args.budget_s,
                                             variants=args.variants.split(","), small_t5=args.small_t5,
                                             out_dir=args.out)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            results["fast_mode_error"] = f"{type(exc).__name__}: {exc}"
        save()
    print_table(results)


def cpu_smoke(work: Path, prompts: list[str]) -> None:
    from generation.engine import tiny

    paths, table = {}, []
    for entry in tiny.TINY_MODELS:
        if entry["backend"] != "diffusers":
            continue
        paths[entry["slug"]] = work / entry["slug"]
        tiny.build_tiny_pipeline(kind=entry["kind"], path=paths[entry["slug"]], seed=entry["seed"])
        table.append((entry["name"], entry["slug"], entry["kind"], entry["pipeline_class"], entry["num_inference_steps"],
                      entry["guidance_scale"], entry["extra_params"], entry["width"], entry["height"]))
    print(json.dumps(worker_sweep(work, paths, prompts, models_table=table, canvas=64), indent=2))


def print_table(r: dict) -> None:
    print(f"\nGPU: {r['gpu']}   date: {r['date']}   torch {r['torch']}   prompts per model: {r['prompts']}")
    if "plain" in r and "sweep" in r:
        plain, sweep = r["plain"], r["sweep"]
        print(f"{'model':16} {'plain load s':>12} {'plain s/img':>11} {'sweep s/img':>11} {'ratio':>6} "
              f"{'done':>5} {'alloc GiB':>9}")
        for slug, p in plain["models"].items():
            s = sweep["models"][slug]
            ratio = s["median_s"] / p["median_s"] if s["median_s"] else float("nan")
            print(f"{slug:16} {p['load_s']:12.2f} {p['median_s']:11.4f} {s['median_s'] or 0:11.4f} {ratio:6.3f} "
                  f"{s['done']:5d} {s['peak_alloc_gib']:9.2f}")
        ratio = sweep["wall_s"] / plain["wall_s"]
        print(f"sweep wall {sweep['wall_s']:.1f}s vs plain loop (incl. loads) {plain['wall_s']:.1f}s: "
              f"{ratio:.3f}x (target <= 1.05)")
    if "fast_mode" in r:
        f = r["fast_mode"]
        print(f"FLUX.1-dev arch 1024^2 28 steps: plain {f.get('plain', {}).get('median_s')} s/img")
        for label in ("fast", "fast_fp8"):
            v = f.get(label, {})
            if v.get("median_s"):
                print(f"  {label:9} {v['median_s']:.3f} s/img  speed-up {v['speedup']:.2f}x (target >= 1.5)  compile "
                      f"{v['compile_s']:.0f}s  pays after {v['pays_after_images']} images  "
                      f"PSNR vs plain {v.get('psnr_vs_plain_db')}")
            else:
                print(f"  {label:9} {v}")
    for key in ("sweep_error", "fast_mode_error"):
        if key in r:
            print(f"{key}: {r[key]}")


if __name__ == "__main__":
    main()
