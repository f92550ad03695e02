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

    python3 benchmarks/fullsize_cards.py --only hunyuan --hunyuan-code DIR/hunyuan_image_3 --work /tmp/w --out $OUT

Each system's JSON is written to $OUT/cards_<system>.json as soon as each step ends. Settings are
measured in the order given, each only while the budget leaves room for the systems still to come
(CORE_S: what one system's build + bf16 + NF4 + NF4-offload took, roughly); a skipped setting is
recorded as skipped, never guessed. Where no measured setting fits a card, sequential offload is
checked under that card's cap with a short render (SEQUENTIAL_STEPS steps: the peak memory of a step
does not depend on the step count) and its time per step is recorded; it is never extrapolated into
a verified s/image.
"""

from __future__ import annotations

import argparse
import dataclasses
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
CARD_SETTINGS = ("bf16", "nf4", "nf4 + model offload", "model offload", "8bit")
CORE_S = {"sd35": 120, "flux": 200, "zimage": 90, "ernie": 200, "hunyuan": 200}  # rough, H200
SEQUENTIAL_STEPS = 2


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


def bandwidth() -> dict:
    """Host-to-device copy rate (pageable and pinned, 2 GiB): what every offload setting pays per byte moved."""
    import torch

    out = {}
    device = torch.empty(2**31, dtype=torch.uint8, device="cuda")
    for name, pinned in (("pageable", False), ("pinned", True)):
        host = torch.ones(2**31, dtype=torch.uint8, pin_memory=pinned)
        device.copy_(host)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            device.copy_(host, non_blocking=pinned)
        torch.cuda.synchronize()
        out[f"h2d_{name}_gb_s"] = round(3 * 2**31 / (time.perf_counter() - t0) / 1e9, 2)
        del host
    del device
    torch.cuda.empty_cache()
    return out


def sequential_check(engine: Engine, spec: ModelSpec, card: float) -> dict:
    """Sequential offload under a card's cap with a short render: does it fit, and its time per step."""
    short = dataclasses.replace(prof.setting_spec(spec, "sequential offload"), num_inference_steps=SEQUENTIAL_STEPS)
    result = prof.measure(engine, short, images=1, cap_bytes=prof.card_cap_bytes(card))
    result["steps"] = SEQUENTIAL_STEPS
    if result.get("ok"):
        result["seconds_per_step_incl_encode_decode"] = round(result["seconds"] / SEQUENTIAL_STEPS, 2)
    return result


def system_run(run: Run, engine: Engine, system: str, work: Path, *, t5: Path | None, images: int,
               verify: bool, settings: tuple[str, ...], reserve_s: float = 0.0) -> None:
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
        entry: dict = {"settings": {}}
        data[variant] = entry
        for name in settings:
            need = 60 + reserve_s + (60 if "offload" in name else 0)
            if run.left() < need:
                entry["settings"][name] = {"skipped": f"{run.left():.0f}s left, {need:.0f}s kept for what follows"}
                continue
            n = images if name == "bf16" else 1
            print(f"== {variant}: {name} x{n} ({run.left():.0f}s left)", flush=True)
            entry["settings"][name] = prof.measure(engine, prof.setting_spec(spec, name), images=n)
            run.save(system, data)
            print(json.dumps(entry["settings"][name])[:600], flush=True)
        measured = {k: v for k, v in entry["settings"].items() if "skipped" not in v}

        def emit(report: dict, entry: dict = entry) -> None:
            entry["profile"] = report
            run.save(system, data)

        check = verify and variant == system
        print(f"== {variant}: cards verify={check} ({run.left():.0f}s left)", flush=True)
        report = prof.profile(engine, spec, settings=tuple(measured), images=1, verify=check,
                              on_result=emit, measured=measured)
        emit(report)
        for row in report["cards"]:
            if row["setting"] is None and check and run.left() > 150 + reserve_s:
                print(f"== {variant}: sequential offload under the {row['card_gb']} GB cap", flush=True)
                row["sequential_check"] = sequential_check(engine, spec, row["card_gb"])
                emit(report)
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
    parser.add_argument("--settings", default=",".join(CARD_SETTINGS), help="in the order they are measured")
    parser.add_argument("--hunyuan-code", type=Path, default=None, help="the vendor's hunyuan_image_3 directory")
    parser.add_argument("--hunyuan-depths", default="1,2")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    run = Run(args.out, args.budget_s)
    engine = Engine(device="cuda", oom_retry=False)
    systems = args.only.split(",")
    try:
        (args.out / "bandwidth.json").write_text(json.dumps(bandwidth() | environment(engine), indent=2, default=str))
    except Exception:  # noqa: BLE001 - a side measurement; the systems still run
        traceback.print_exc()
    t5 = None
    if {"sd35", "flux"} & set(systems):
        t5 = fm.build_shared_t5(args.work / "t5-xxl", seed=1)
    for index, system in enumerate(systems):
        reserve = sum(CORE_S.get(s, 120) for s in systems[index + 1:])
        try:
            if system == "hunyuan":
                from benchmarks import hunyuan_fullsize

                if not args.hunyuan_code or not args.hunyuan_code.is_dir():
                    raise FileNotFoundError(f"--hunyuan-code {args.hunyuan_code}: the vendor's hunyuan_image_3 directory")
                hunyuan_fullsize.run(run.save, engine, args.work, code=args.hunyuan_code, left=lambda reserve=reserve: run.left() - reserve,
                                     depths=tuple(int(d) for d in args.hunyuan_depths.split(",")))
            else:
                system_run(run, engine, system, args.work, t5=t5, images=args.images,
                           verify=system in args.verify.split(","), settings=tuple(args.settings.split(",")),
                           reserve_s=reserve)
        except Exception:  # noqa: BLE001 - record and go on to the next system
            traceback.print_exc()
            (args.out / f"error_{system}.txt").write_text(traceback.format_exc())
    print(f"total {time.monotonic() - run.start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
