"""Scale-out: one sweep rendered by one GPU worker, then by two (issue 6 §3).

The product's scale-out is "one Celery worker per GPU on one queue". This measures it end
to end: the same sweep (same suite, model, seeds) is created twice against one database
and one broker (embedded SQLite + kombu's filesystem transport); the first copy is rendered
by ONE worker, the second by TWO fresh workers, each

    CUDA_VISIBLE_DEVICES=<i> celery -A evalsite worker -Q gpu,default --pool=solo -c 1

Wall time runs from sweep_create (which enqueues the chunks) until the last image is
saved, model loads included: every fresh worker loads the model once. Each worker's
one-time start (imports, Engine, CUDA context) is paid before the clock starts, with a
tiny warm-up sweep that every worker must have taken part in, because workers are
long-lived. GPU utilisation of every GPU is sampled (NVML, 0.5 s) during each timed sweep.

Default model: the full FLUX.1 [dev] transformer architecture (random bf16 weights, 12B;
2-layer T5 of real width, real sequence length 512), 1024^2, 28 steps, guidance 3.5.

    python benchmarks/scale_out.py --work /tmp/scale --out $OUT     # on a machine with >= 2 GPUs
    python benchmarks/scale_out.py --cpu-smoke --work /tmp/scale     # the same path on a CPU, tiny models
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.sweep_efficiency import PROMPT_POOL, log  # noqa: E402

SEEDS = [42, 43]
GIB = 2**30


# ----------------------------------------------------------------------------- GPU sampling
class GpuSampler(threading.Thread):
    """Every GPU's utilisation.gpu (% of the last period with a kernel running) and memory, via NVML."""

    def __init__(self, interval: float = 0.5):
        super().__init__(name="gpu-sampler", daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, list[int], list[float]]] = []
        self.stopped = threading.Event()
        self.error = ""

    def run(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

            def read() -> tuple[list[int], list[float]]:
                return ([pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles],
                        [round(pynvml.nvmlDeviceGetMemoryInfo(h).used / GIB, 1) for h in handles])
        except Exception as exc:  # noqa: BLE001 - fall back to nvidia-smi
            self.error = f"pynvml: {exc}"

            def read() -> tuple[list[int], list[float]]:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
                rows = [line.split(",") for line in out.stdout.strip().splitlines()]
                return [int(r[0]) for r in rows], [round(float(r[1]) / 1024, 1) for r in rows]
        while not self.stopped.wait(self.interval):
            try:
                util, mem = read()
            except Exception as exc:  # noqa: BLE001
                self.error = f"sampling failed: {exc}"
                return
            self.samples.append((time.perf_counter(), util, mem))

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=15)

    def summary(self, start: float, end: float) -> dict:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return {"samples": 0, "error": self.error or "no samples"}
        n_gpus = len(inside[0][1])
        return {
            "samples": len(inside),
            "mean_util_pct": [round(statistics.mean(s[1][i] for s in inside), 1) for i in range(n_gpus)],
            "share_over_50pct": [round(sum(s[1][i] > 50 for s in inside) / len(inside), 3) for i in range(n_gpus)],
            "max_mem_used_gib": [max(s[2][i] for s in inside) for i in range(n_gpus)],
            # every 4th sample (2 s apart): the time line, relative to the sweep's start
            "trace": [[round(s[0] - start, 1), *s[1]] for s in inside[::4]],
        }


# ----------------------------------------------------------------------------- models
def build_gpu_model(work: Path, depth: str) -> dict:
    """The FLUX.1 [dev] architecture with random weights: full size, or full width with fewer blocks."""
    from benchmarks import fullsize_models as fm

    t5 = fm.build_shared_t5(work / "t5-small", medium=True, seed=1)
    path = fm.build("flux", work / f"flux1-dev-{depth}", medium=depth == "medium", seed=3, t5_dir=t5)
    name = "FLUX.1-dev arch" + (" (4+8 blocks)" if depth == "medium" else " (19+38 blocks, 12B)")
    return {"name": name, "slug": f"flux1-dev-{depth}", "source": str(path), "pipeline_class": "FluxPipeline",
            "dtype": "bfloat16", "num_inference_steps": 28, "guidance_scale": 3.5, "width": 1024, "height": 1024,
            "extra_params": {"max_sequence_length": 512}, "gib_on_disk": round(fm.dir_gib(path), 2)}


def build_tiny_models(work: Path) -> list[dict]:
    from generation.engine import tiny

    models = []
    for entry in tiny.TINY_MODELS:
        if entry["kind"] not in ("sd3", "flux"):
            continue
        path = work / entry["slug"]
        tiny.build_tiny_pipeline(kind=entry["kind"], path=path, seed=entry["seed"])
        models.append({"name": entry["name"], "slug": entry["slug"], "source": str(path),
                       "pipeline_class": entry["pipeline_class"], "dtype": entry["dtype"],
                       "num_inference_steps": entry["num_inference_steps"], "guidance_scale": entry["guidance_scale"],
                       "width": entry["width"], "height": entry["height"], "extra_params": entry["extra_params"]})
    return models


def standalone_load(model: dict) -> dict:
    """Load + warm-up of the model alone through the engine (main process, GPU 0): the per-worker cost."""
    from generation.engine import Engine, ModelSpec

    keys = ("slug", "source", "pipeline_class", "dtype", "num_inference_steps", "guidance_scale", "width", "height",
            "extra_params")
    engine = Engine(device="cuda")
    loaded = engine.load(ModelSpec(**{k: model[k] for k in keys}))
    result = {"load_s": round(loaded.load_seconds, 2), "warmup_s": round(loaded.warmup_seconds, 2),
              "resident_gib": round(loaded.size_bytes / GIB, 2)}
    del loaded
    engine.evict_all()
    torch.cuda.empty_cache()
    return result


# ----------------------------------------------------------------------------- site and workers
def site_env(site: Path, chunk_prompts: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "evalsite.settings",
        "EVALSITE_DATA_DIR": str(site),
        "DATABASE_URL": f"sqlite:///{site / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "EVALSITE_RENDER_CHUNK_SIZE": str(chunk_prompts),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # worker i's GPU is NVML/nvidia-smi index i
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    })
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def setup_site(site: Path, env: dict[str, str], prompts: list[str], warm_prompts: list[str]) -> None:
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "EVALSITE_DATA_DIR", "DATABASE_URL",
                                           "CELERY_BROKER_URL", "EVALSITE_RENDER_CHUNK_SIZE")})
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v", "0"], check=True, env=env, cwd=ROOT)
    for suite, lines in (("scale", prompts), ("warm", warm_prompts)):
        path = site / f"{suite}.txt"
        path.write_text("\n".join(lines) + "\n")
        subprocess.run(manage + ["import_prompts", str(path), "--suite", suite], check=True, env=env, cwd=ROOT)
    import django

    django.setup()


class Worker:
    """One `celery worker` process on one GPU."""

    def __init__(self, *, index: int, gpu: int | None, env: dict[str, str], site: Path, tag: str):
        self.index, self.gpu = index, gpu
        self.log_path = site / f"worker-{tag}-{index}.log"
        env = dict(env)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "evalsite", "worker", "-Q", "gpu,default", "--pool=solo", "-c", "1",
             "--loglevel=INFO", "-n", f"scale-{tag}-{index}@%h"],
            env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )
        import socket

        self.name = f"{socket.gethostname()}:{self.proc.pid}"  # generation.services.worker_name() of that process

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.index} exited ({self.proc.returncode}):\n{self.text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wait_sweep(sweep, workers: list[Worker], poll: float = 0.2) -> dict:
    from generation.selectors import sweep_totals

    while True:
        totals = sweep_totals(sweep=sweep)
        if totals["finished"]:
            return totals
        for worker in workers:
            worker.check_alive()
        time.sleep(poll)


def warm_workers(workers: list[Worker], warm_model, seeds: list[int]) -> dict:
    """Tiny sweeps until every worker has rendered part of one (pays imports, Engine, CUDA init)."""
    from generation.models import Generation
    from generation.services import sweep_create
    from prompts.models import PromptSuite

    suite = PromptSuite.objects.get(name="warm")
    seen: set[str] = set()
    t0 = time.perf_counter()
    rounds = 0
    while rounds < 8 and not {w.name for w in workers} <= seen:
        rounds += 1
        sweep = sweep_create(suite=suite, image_models=[warm_model], seeds=seeds, image_format="png")
        wait_sweep(sweep, workers, poll=0.1)
        seen |= set(Generation.objects.filter(sweep=sweep).values_list("worker", flat=True))
    missing = sorted({w.name for w in workers} - seen)
    if missing:
        raise RuntimeError(f"warm-up: workers {missing} never took a chunk in {rounds} tiny sweeps")
    return {"rounds": rounds, "seconds": round(time.perf_counter() - t0, 1)}


def run_workers(*, n: int, gpus: list[int | None], env: dict[str, str], site: Path, models, warm_model,
                sampler: GpuSampler | None, seeds: list[int]) -> dict:
    """Fresh workers, warm-up, then the timed sweep; per-worker and per-GPU figures from the Generation rows."""
    from django.utils import timezone

    from generation.models import Generation, GenerationStatus
    from generation.services import sweep_create
    from prompts.models import PromptSuite

    tag = f"{n}w"
    workers = [Worker(index=i, gpu=gpus[i], env=env, site=site, tag=tag) for i in range(n)]
    out: dict = {"workers": n}
    try:
        deadline = time.monotonic() + 180
        for worker in workers:
            while "ready." not in worker.text():
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {worker.index} did not start:\n{worker.text()[-3000:]}")
                time.sleep(0.2)
        out["warm_up"] = warm_workers(workers, warm_model, seeds[:1])
        log(f"{n} worker(s) warm ({out['warm_up']}); timed sweep starts")
        suite = PromptSuite.objects.get(name="scale")
        started_at = timezone.now()
        t0 = time.perf_counter()
        sweep = sweep_create(suite=suite, image_models=models, seeds=seeds, image_format="png")
        totals = wait_sweep(sweep, workers)
        wall = time.perf_counter() - t0
        if sampler is not None:
            time.sleep(2 * sampler.interval)
    finally:
        for worker in workers:
            worker.stop()
    rows = list(Generation.objects.filter(sweep=sweep))
    gpu_of = {w.name: w for w in workers}
    per_worker = []
    for worker in workers:
        mine = [g for g in rows if g.worker == worker.name and g.status == GenerationStatus.DONE]
        render_s = sum(g.seconds or 0 for g in mine)
        entry = {"worker": worker.name, "cuda_visible_devices": worker.gpu, "images": len(mine),
                 "gpu_name": sorted({g.gpu_name for g in mine}), "render_s": round(render_s, 2),
                 "median_s_per_image": round(statistics.median([g.seconds for g in mine]), 3) if mine else None}
        if mine:
            first = min(g.started_at for g in mine)
            last = max(g.finished_at for g in mine)
            busy = (last - first).total_seconds()
            entry.update({"first_claim_s": round((first - started_at).total_seconds(), 2),
                          "last_done_s": round((last - started_at).total_seconds(), 2),
                          "busy_s": round(busy, 2),
                          # model load + warm-up + what saving/claiming did not overlap with rendering
                          "not_rendering_s": round(busy - render_s, 2)})
        entry["database_locked_lines"] = worker.text().count("database is locked")
        per_worker.append(entry)
        log(f"{tag} worker {worker.index}: {entry}")
    done = sum(g.status == GenerationStatus.DONE for g in rows)
    out.update({
        "sweep_id": sweep.pk, "wall_s": round(wall, 2), "images": len(rows), "done": done,
        "failed": totals["failed"], "errors": sorted({g.error[:300] for g in rows if g.error})[:5],
        "img_per_s": round(done / wall, 4), "per_worker": per_worker,
        "unknown_worker_images": sum(g.worker not in gpu_of for g in rows),
        "median_s_per_image": round(statistics.median([g.seconds for g in rows if g.seconds]), 3),
    })
    if sampler is not None:
        out["gpu_util"] = sampler.summary(t0, t0 + wall)
    return out


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale-out"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "var/scale-out")))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--chunk-prompts", type=int, default=2,
                        help="EVALSITE_RENDER_CHUNK_SIZE: prompts per chunk (a chunk is what one worker takes)")
    parser.add_argument("--depth", choices=("full", "medium"), default="full")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    parser.add_argument("--budget-s", type=float, default=560, help="skip a run that would not fit in this")
    parser.add_argument("--cpu-smoke", action="store_true", help="the same path on a CPU with tiny models")
    args = parser.parse_args()
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    counts = [int(n) for n in args.workers.split(",")]
    n_gpus = torch.cuda.device_count() if cuda else 0
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
        "gpus": [torch.cuda.get_device_name(i) for i in range(n_gpus)],
        "args": {k: str(v) for k, v in vars(args).items()}, "runs": {},
    }
    json_path = args.out / "scale_out.json"

    def save() -> None:
        json_path.write_text(json.dumps(results, indent=2, default=str))

    save()
    if cuda and n_gpus < max(counts):
        results["error"] = f"{max(counts)} workers need {max(counts)} GPUs; torch sees {n_gpus}"
        save()
        raise SystemExit(results["error"])
    try:
        t0 = time.perf_counter()
        if cuda:
            models_spec = [build_gpu_model(args.work, args.depth)]
        else:
            models_spec = build_tiny_models(args.work)
        results["build_s"] = round(time.perf_counter() - t0, 1)
        results["models"] = models_spec
        log(f"built {[m['slug'] for m in models_spec]} in {results['build_s']}s")
        if cuda:
            results["standalone_load"] = standalone_load(models_spec[0])
            log(f"standalone load + warm-up on GPU 0: {results['standalone_load']}")
        save()

        from generation.engine import tiny

        tiny_entry = next(e for e in tiny.TINY_MODELS if e["kind"] == "flux")
        tiny.build_tiny_pipeline(kind="flux", path=args.work / "warm-tiny", seed=tiny_entry["seed"])
        prompts = PROMPT_POOL[: args.prompts]
        seeds = SEEDS[: args.seeds] if args.seeds <= len(SEEDS) else list(range(args.seeds))
        site = args.work / "site"
        env = site_env(site, args.chunk_prompts)
        warm_prompts = [f"warm-up prompt {i}" for i in range(2 * args.chunk_prompts * max(counts))]
        setup_site(site, env, prompts, warm_prompts)

        from generation.models import ImageModel

        keys = ("name", "slug", "source", "pipeline_class", "dtype", "num_inference_steps", "guidance_scale",
                "width", "height", "extra_params")
        models = [ImageModel.objects.create(**{k: m[k] for k in keys}) for m in models_spec]
        warm_model = ImageModel.objects.create(
            slug="warm-tiny", name="warm-up (tiny)", source=str(args.work / "warm-tiny"), pipeline_class="FluxPipeline",
            dtype="float32", num_inference_steps=2, guidance_scale=3.5, width=48, height=48,
            extra_params={"max_sequence_length": 32})
        results["sweep"] = {"prompts": len(prompts), "seeds": seeds, "models": [m.slug for m in models],
                            "images": len(prompts) * len(seeds) * len(models), "chunk_prompts": args.chunk_prompts}
        for n in counts:
            if results["runs"]:
                # a later run takes about 1/n of the first one's time, plus worker starts
                first = next(iter(results["runs"].values()))
                need = first.get("wall_s", 0) / n * 1.15 + 60
                left = args.budget_s - (time.monotonic() - started)
                if need > left:
                    results["runs"][f"{n}w"] = {"skipped": f"needs ~{need:.0f}s, {left:.0f}s left"}
                    save()
                    continue
            sampler = GpuSampler() if cuda else None
            if sampler:
                sampler.start()
            try:
                gpus = list(range(n)) if cuda else [None] * n
                results["runs"][f"{n}w"] = run_workers(n=n, gpus=gpus, env=env, site=site, models=models,
                                                       warm_model=warm_model, sampler=sampler, seeds=seeds)
            except Exception as exc:  # noqa: BLE001 - keep what the other run measured
                traceback.print_exc()
                results["runs"][f"{n}w"] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
            finally:
                if sampler:
                    sampler.stop()
            save()
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        results["error"] = f"{type(exc).__name__}: {exc}"[:4000]
    finally:
        save()
        logs = sorted((args.work / "site").glob("worker-*.log"))
        with open(args.out / "worker_logs.txt", "w") as bundle:
            for path in logs:
                lines = path.read_text(errors="replace").splitlines()
                bundle.write(f"===== {path.name} ({len(lines)} lines; last 150)\n" + "\n".join(lines[-150:]) + "\n")
    print_table(results)


def print_table(r: dict) -> None:
    print(f"\nGPUs: {r['gpus']}   date: {r['date']}   torch {r['torch']}")
    if "sweep" in r:
        s = r["sweep"]
        print(f"sweep: {s['models']} x {s['prompts']} prompts x {len(s['seeds'])} seeds = {s['images']} images, "
              f"{s['chunk_prompts']} prompts per chunk")
    if "standalone_load" in r:
        print(f"one model load + warm-up (engine, alone): {r['standalone_load']}")
    base = r["runs"].get("1w", {}).get("wall_s")
    print(f"{'workers':>7} | {'wall s':>7} | {'images':>6} | {'img/s':>6} | {'ratio vs 1w':>11} | "
          f"{'images per worker (GPU)':>26} | {'mean util % per GPU':>20} | {'not rendering s per worker':>26}")
    for label, run in r["runs"].items():
        if "wall_s" not in run:
            print(f"{label:>7} | {run}")
            continue
        ratio = f"{run['wall_s'] / base:.3f}" if base else "-"
        counts = ", ".join(f"{w['images']} (GPU {w['cuda_visible_devices']})" for w in run["per_worker"])
        util = run.get("gpu_util", {}).get("mean_util_pct", "-")
        idle = ", ".join(str(w.get("not_rendering_s")) for w in run["per_worker"])
        print(f"{run['workers']:>7} | {run['wall_s']:7.1f} | {run['done']:>6} | {run['img_per_s']:6.3f} | {ratio:>11} | "
              f"{counts:>26} | {str(util):>20} | {idle:>26}")
    if "error" in r:
        print(f"error: {r['error']}")


if __name__ == "__main__":
    main()
