"""Issue 14: full-size figures of the five reference systems and their card classes, on one GPU.

Real architectures with random weights (benchmarks/fullsize_models.py), saved and loaded back by
the engine through from_pretrained, rendered at the reference benchmark's settings. Per system:
seconds per image and peak VRAM (bf16), then the other settings (NF4, model offload, NF4 + offload)
once each, and the card-class table (generation/engine/profile.py). FLUX.1 [dev] gets the full
profile: every card class verified by rendering under a memory cap; for the others the card table is
predicted from the measured peaks (cheaper in GPU time), and says so.

    python3 benchmarks/fullsize_cards.py --only flux --work /tmp/w --out $OUT --budget-s 500
    python3 benchmarks/fullsize_cards.py --only sd35,zimage,ernie --work /tmp/w --out $OUT
    python3 benchmarks/fullsize_cards.py --only hunyuan --work /tmp/w --out $OUT

Each system's JSON is written to $OUT/cards_<system>.json as soon as each step ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import fullsize_models as fm  # noqa: E402
from generation.engine import Engine, ModelSpec  # noqa: E402
from generation.engine import profile as prof  # noqa: E402

# The reference benchmark's settings (generation/services/registry.py REFERENCE_MODELS; DESIGN.md).
REFERENCE = {
    "sd35": dict(slug="sd3-5-large", pipeline_class="StableDiffusion3Pipeline", num_inference_steps=28,
                 guidance_scale=7.0, extra_params={"max_sequence_length": 256}),
    "flux": dict(slug="flux-1-dev", pipeline_class="FluxPipeline", num_inference_steps=50, guidance_scale=3.5,
                 extra_params={"max_sequence_length": 512}),
    "zimage": dict(slug="z-image-turbo", pipeline_class="ZImagePipeline", num_inference_steps=9,
                   guidance_scale=0.0),
    "ernie": dict(slug="ernie-image", pipeline_class="ErnieImagePipeline", num_inference_steps=50,
                  guidance_scale=4.0, extra_params={"use_pe": False}),
    "ernie_turbo": dict(slug="ernie-image-turbo", pipeline_class="ErnieImagePipeline", num_inference_steps=8,
                        guidance_scale=1.0, extra_params={"use_pe": False}),
}
BUILD_KIND = {"sd35": "sd3", "flux": "flux", "zimage": "zimage", "ernie": "ernie"}
CARD_SETTINGS = ("bf16", "nf4", "model offload", "nf4 + model offload")


def spec_for(system: str, path: Path, **changes) -> ModelSpec:
    return ModelSpec(source=str(path), dtype="bfloat16", width=1024, height=1024, **(REFERENCE[system] | changes))


class Run:
    def __init__(self, out: Path, budget_s: float):
        self.out, self.budget_s, self.start = out, budget_s, time.monotonic()

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def save(self, name: str, data: dict) -> None:
        (self.out / f"cards_{name}.json").write_text(json.dumps(data, indent=2, default=str))


def environment(engine: Engine) -> dict:
    env = engine.environment()
    env["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True).stdout.strip()
    env["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return env


def system_run(run: Run, engine: Engine, system: str, work: Path, *, t5: Path | None, images: int,
               verify: bool, settings: tuple[str, ...]) -> None:
    data: dict = {"system": system, "environment": environment(engine), "reference": REFERENCE[system]}
    path = work / system
    t0 = time.monotonic()
    kind = BUILD_KIND[system]
    fm.build(kind, path, seed=3, t5_dir=t5 if kind in ("sd3", "flux") else None)
    data["build_s"] = round(time.monotonic() - t0, 1)
    data["gib_on_disk"] = round(fm.dir_gib(path), 2)
    run.save(system, data)
    variants = [system] + (["ernie_turbo"] if system == "ernie" else [])
    for variant in variants:
        spec = spec_for(variant, path)
        entry: dict = {}
        data[variant] = entry
        if run.left() < 60:
            entry["skipped"] = f"{run.left():.0f}s left"
            break
        print(f"== {variant}: bf16 x{images} ({run.left():.0f}s left)", flush=True)
        entry["bf16"] = prof.measure(engine, prof.setting_spec(spec, "bf16"), images=images)
        run.save(system, data)
        print(json.dumps(entry["bf16"])[:600], flush=True)
        if variant != system:
            continue  # the turbo variant shares the architecture: its memory is the same, its steps differ
        chosen = tuple(s for s in settings if s != "bf16")

        def emit(report: dict, entry: dict = entry) -> None:
            entry["profile"] = report
            run.save(system, data)

        print(f"== {variant}: profile {chosen} verify={verify} ({run.left():.0f}s left)", flush=True)
        report = prof.profile(engine, spec, settings=("bf16",) + chosen, images=1, verify=verify,
                              on_result=emit, measured={"bf16": entry["bf16"]})
        emit(report)
        for row in report["cards"]:
            print(row["card_gb"], row["setting"], row.get("seconds"), row.get("peak_reserved_gib"),
                  [(t["setting"], t.get("ok")) for t in row["tried"]], flush=True)
    shutil.rmtree(path, ignore_errors=True)  # the disk holds one full-size model at a time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="flux")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cards"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "var/cards")))
    parser.add_argument("--budget-s", type=float, default=540)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--verify", default="flux", help="systems whose card classes are verified under caps")
    parser.add_argument("--settings", default=",".join(CARD_SETTINGS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    run = Run(args.out, args.budget_s)
    engine = Engine(device="cuda", oom_retry=False)
    systems = args.only.split(",")
    t5 = None
    if {"sd35", "flux"} & set(systems):
        t5 = fm.build_shared_t5(args.work / "t5-xxl", seed=1)
    for system in systems:
        try:
            if system == "hunyuan":
                from benchmarks import hunyuan_fullsize

                hunyuan_fullsize.run(run, engine, args.work)
            else:
                system_run(run, engine, system, args.work, t5=t5, images=args.images,
                           verify=system in args.verify.split(","), settings=tuple(args.settings.split(",")))
        except Exception:  # noqa: BLE001 - record and go on to the next system
            traceback.print_exc()
            (args.out / f"error_{system}.txt").write_text(traceback.format_exc())
    print(f"total {time.monotonic() - run.start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
