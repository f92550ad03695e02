"""Proof on a real GPU (issue 3 §5): the engine on full-size SD3.5 Large and FLUX.1 [dev] architectures.

Random weights (benchmarks/fullsize_models.py), real configs, real diffusers classes,
saved and loaded through from_pretrained by the engine. For each: seconds per image and
peak VRAM from the engine's own measurements, next to a plain `pipe(...)` call on the same
loaded pipeline; then FLUX.1 [dev] as bitsandbytes NF4 and with model CPU offload.

    python benchmarks/gpu_proof.py --work /tmp/gpu-proof --out $OUT   # on an H100/H200

Writes gpu_proof.json (and prints a table). Sections run in order and each is saved as
soon as it ends; a section is skipped when --budget-s would be exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import fullsize_models as fm  # noqa: E402
from generation.engine import Engine, ModelSpec, RenderRequest  # noqa: E402

PROMPTS = [
    "A red fox standing in fresh snow at dawn, photorealistic",
    "A neon sign that says OPEN above a rainy street at night",
    "A bowl of ramen on a wooden table, studio lighting",
    "An astronaut riding a horse on the moon, 35mm photo",
]
GIB = 2**30


class Proof:
    def __init__(self, out: Path, budget_s: float):
        self.out = out
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sections": {}}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def save(self) -> None:
        (self.out / "gpu_proof.json").write_text(json.dumps(self.results, indent=2, default=str))

    def run(self, name: str, need_s: float, fn, *args, **kwargs):
        if self.left() < need_s:
            self.results["sections"][name] = {"skipped": f"needs ~{need_s:.0f}s, {self.left():.0f}s left"}
            print(f"== {name}: skipped ({self.left():.0f}s left)", flush=True)
            self.save()
            return None
        print(f"== {name} ({self.left():.0f}s left)", flush=True)
        t0 = time.monotonic()
        try:
            value = fn(*args, **kwargs)
            self.results["sections"][name] = {"ok": True, "wall_s": round(time.monotonic() - t0, 1), **(value or {})}
        except Exception as exc:  # noqa: BLE001 - record and go on to the next section
            traceback.print_exc()
            self.results["sections"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                              "wall_s": round(time.monotonic() - t0, 1)}
        print(json.dumps(self.results["sections"][name], default=str)[:1500], flush=True)
        self.save()
        return self.results["sections"][name]


def plain_call(pipe, spec: ModelSpec, prompt: str, seed: int) -> float:
    """What a user would write: pipe(...) with the same settings, timed with CUDA synchronised."""
    kwargs = dict(prompt=prompt, num_inference_steps=spec.num_inference_steps, width=spec.width,
                  height=spec.height, generator=torch.Generator("cpu").manual_seed(seed), **spec.extra_params)
    if spec.guidance_scale is not None:
        kwargs["guidance_scale"] = spec.guidance_scale
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        pipe(**kwargs)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def engine_run(engine: Engine, spec: ModelSpec, n: int, *, plain: int = 0) -> dict:
    t0 = time.perf_counter()
    loaded = engine.load(spec)
    load_and_warm = time.perf_counter() - t0
    plain_s = [plain_call(loaded.model, spec, PROMPTS[i % len(PROMPTS)], 1000 + i) for i in range(plain)]
    requests = [RenderRequest(key=str(i), prompt=PROMPTS[i % len(PROMPTS)], seed=1000 + i) for i in range(n)]
    outcomes = list(engine.render(spec, requests))
    bad = [o.error for o in outcomes if not o.ok]
    if bad:
        raise RuntimeError(f"render errors: {bad}")
    seconds = [o.seconds for o in outcomes]
    result = {
        "spec": {k: v for k, v in spec.snapshot().items() if k not in ("source", "load_params")},
        "load_s": round(loaded.load_seconds, 2), "warmup_s": round(loaded.warmup_seconds, 2),
        "load_and_warmup_s": round(load_and_warm, 2), "offload": loaded.offload, "notes": loaded.notes,
        "resident_gib_estimate": round(loaded.size_bytes / GIB, 2),
        "engine_s_per_image": [round(s, 3) for s in seconds], "engine_median_s": round(statistics.median(seconds), 3),
        "peak_alloc_gib": round(max(o.peak_vram_allocated for o in outcomes) / GIB, 2),
        "peak_reserved_gib": round(max(o.peak_vram_reserved for o in outcomes) / GIB, 2),
        "gpu": outcomes[0].gpu_name, "native": [outcomes[0].native_width, outcomes[0].native_height],
    }
    if plain_s:
        result["plain_s_per_image"] = [round(s, 3) for s in plain_s]
        result["plain_median_s"] = round(statistics.median(plain_s), 3)
        result["engine_over_plain"] = round(statistics.median(seconds) / statistics.median(plain_s), 4)
    del loaded
    engine.evict_all()
    return result


def flux_spec(path: Path, **changes) -> ModelSpec:
    base = dict(slug="flux1-dev-arch", source=str(path), pipeline_class="FluxPipeline", dtype="bfloat16",
                num_inference_steps=28, guidance_scale=3.5, width=1024, height=1024,
                extra_params={"max_sequence_length": 512})
    return ModelSpec(**(base | changes))


def sd35_spec(path: Path, **changes) -> ModelSpec:
    base = dict(slug="sd35-large-arch", source=str(path), pipeline_class="StableDiffusion3Pipeline",
                dtype="bfloat16", num_inference_steps=28, guidance_scale=3.5, width=1024, height=1024,
                extra_params={"max_sequence_length": 256})
    return ModelSpec(**(base | changes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-proof"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "var/gpu-proof")))
    parser.add_argument("--budget-s", type=float, default=540)
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    proof = Proof(args.out, args.budget_s)
    engine = Engine(device="cuda")
    proof.results["environment"] = engine.environment()
    proof.results["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True).stdout.strip()
    n = args.images
    t5 = args.work / "t5-xxl"
    sd3 = args.work / "sd35-large"
    flux = args.work / "flux1-dev"

    def build_sd3():
        t0 = time.monotonic()
        fm.build_shared_t5(t5, seed=1)
        t5_s = time.monotonic() - t0
        fm.build("sd3", sd3, seed=2, t5_dir=t5)
        return {"t5_build_s": round(t5_s, 1), "gib_on_disk": round(fm.dir_gib(sd3), 2)}

    proof.run("build sd3.5-large arch (+ shared T5-XXL)", 60, build_sd3)
    proof.run("sd3.5-large bf16, engine vs plain", 60, engine_run, engine, sd35_spec(sd3), n, plain=n)
    shutil.rmtree(sd3, ignore_errors=True)  # the disk holds one full-size transformer at a time
    def build_flux():
        fm.build("flux", flux, seed=3, t5_dir=t5)
        return {"gib_on_disk": round(fm.dir_gib(flux), 2)}

    proof.run("build flux.1-dev arch", 60, build_flux)
    proof.run("flux.1-dev bf16, engine vs plain", 70, engine_run, engine, flux_spec(flux), n, plain=n)
    proof.run("flux.1-dev NF4 (bitsandbytes 4-bit)", 80, engine_run, engine, flux_spec(flux, quantization="4bit"), 2)
    proof.run("flux.1-dev model CPU offload", 60, engine_run, engine, flux_spec(flux, offload="model"), 2)
    proof.results["total_s"] = round(time.monotonic() - proof.start, 1)
    proof.save()
    print_table(proof.results)


def print_table(results: dict) -> None:
    print(f"\nGPU: {results['environment'].get('gpu_name')}  date: {results['date']}")
    print(f"{'section':45} {'s/image':>8} {'plain':>8} {'ratio':>7} {'alloc GiB':>9} {'resv GiB':>9} {'load s':>7}")
    for name, sec in results["sections"].items():
        if "engine_median_s" in sec:
            print(f"{name:45} {sec['engine_median_s']:8.3f} {sec.get('plain_median_s', float('nan')):8.3f} "
                  f"{sec.get('engine_over_plain', float('nan')):7.3f} {sec['peak_alloc_gib']:9.2f} "
                  f"{sec['peak_reserved_gib']:9.2f} {sec['load_s']:7.1f}")
        else:
            print(f"{name:45} {json.dumps(sec, default=str)[:120]}")


if __name__ == "__main__":
    main()
