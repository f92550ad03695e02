"""HunyuanImage-3.0 on one GPU (issue 14): the vendor's real code at the released width, fewer layers.

80B parameters do not fit one H200 in bf16 (160 GB), and building and saving them would take the
whole GPU lease. The model is a stack of identical decoder layers (attention + 64-expert MoE), so
it is built at its real width (generation/engine/hunyuan3.FULL_SIZE, VAE_FULL, VIT_FULL) with
L = 1, 2, ... layers, each saved and loaded through the engine's transformers backend
(AutoModelForCausalLM, trust_remote_code, the vendor's generate_image) and rendered at the
reference settings (1024², 50 steps). Per setting, seconds per image and peak VRAM are fitted as
a + b·L over the depths measured (least squares; exact with two depths) and evaluated at the
released depth (32 layers): b is one layer's time and memory (its weights, its KV cache at the
real sequence length, its share of the per-step work), a is everything else (embeddings, lm_head,
VAE, ViT, text, the transient activations of one layer, VAE decode).

    python3 benchmarks/hunyuan_fullsize.py --code DIR/hunyuan_image_3 --work /tmp/hy --out $OUT
    python3 benchmarks/hunyuan_fullsize.py --code ... --cpu-smoke      # real width, 2 experts, 256², CPU

Writes $OUT/cards_hunyuan.json after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generation.engine import Engine, ModelSpec, hunyuan3  # noqa: E402
from generation.engine import profile as prof  # noqa: E402

FULL_LAYERS = hunyuan3.FULL_SIZE["num_hidden_layers"]
LOAD_PARAMS = {"attn_implementation": "sdpa", "moe_impl": "eager"}  # the registry's reference load_params


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares a + b·x through (x, y) points (two points: the line through them)."""
    if len({x for x, _ in points}) < 2:
        raise ValueError("need measurements at two depths at least")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def extrapolate(rows: dict[int, dict[str, Any]], keys: tuple[str, ...], layers: int = FULL_LAYERS) -> dict[str, Any]:
    """Per key: intercept, per-layer slope and the value at `layers`, from the rows that rendered."""
    ok = {depth: r for depth, r in rows.items() if r.get("ok")}
    out: dict[str, Any] = {"depths": sorted(ok), "layers": layers}
    for key in keys:
        points = [(float(depth), float(r[key])) for depth, r in ok.items() if r.get(key) is not None]
        if len({x for x, _ in points}) < 2:
            out[key] = None
            continue
        a, b = fit_line(points)
        out[key] = {"intercept": round(a, 3), "per_layer": round(b, 4), "at_full_depth": round(a + b * layers, 2)}
    return out


def spec_for(path: Path, *, setting: str, width: int, height: int, steps: int) -> ModelSpec:
    spec = ModelSpec(slug=f"hunyuan-{path.name}", source=str(path), backend="transformers", dtype="bfloat16",
                     num_inference_steps=steps, width=width, height=height, load_params=dict(LOAD_PARAMS))
    return prof.setting_spec(spec, setting)


def _cpu_measure(engine: Engine, spec: ModelSpec) -> dict[str, Any]:
    """The CPU smoke's measurement (profile.measure caps GPU memory, which a CPU has none of)."""
    from generation.engine import RenderRequest

    loaded = engine.load(spec)
    [outcome] = list(engine.render(spec, [RenderRequest(key="p0", prompt=prof.PROMPT, seed=0)]))
    result = {"ok": outcome.ok, "error": outcome.error, "seconds": round(outcome.seconds or 0, 3),
              "load_seconds": round(loaded.load_seconds, 2), "warmup_seconds": round(loaded.warmup_seconds, 2),
              "size": [outcome.native_width, outcome.native_height], "notes": list(loaded.notes)}
    engine.evict_all()
    return result


def predict_cards(full: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Card classes from the extrapolated full-depth peaks (predicted, never rendered at 80B)."""
    rows = []
    for card in prof.CARD_CLASSES_GB:
        cap = prof.card_cap_bytes(card) / prof.GIB
        fits = sorted(
            (name for name, f in full.items()
             if f.get("peak_reserved_gib") and f["peak_reserved_gib"]["at_full_depth"] <= cap),
            key=lambda name: full[name]["seconds"]["at_full_depth"] if full[name].get("seconds") else 1e9)
        row: dict[str, Any] = {"card_gb": card, "cap_gib": round(cap, 2), "setting": fits[0] if fits else None,
                               "predicted": True}
        if fits:
            f = full[fits[0]]
            row.update(seconds=f["seconds"]["at_full_depth"] if f.get("seconds") else None,
                       peak_reserved_gib=f["peak_reserved_gib"]["at_full_depth"])
        rows.append(row)
    return rows


def run(save: Any, engine: Engine, work: Path, *, code: Path, depths: tuple[int, ...] = (1, 2),
        settings: tuple[str, ...] = ("bf16", "nf4"), nf4_depths: tuple[int, ...] | None = None,
        size: dict[str, Any] | None = None, vae: dict[str, Any] | None = None, vit: dict[str, Any] | None = None,
        width: int = 1024, height: int = 1024, steps: int = 50, device: str = "cuda",
        left: Any = lambda: 1e9) -> dict[str, Any]:
    """Build each depth, measure each setting through the engine, extrapolate to 32 layers.
    `save(name, data)` is called after every step so a killed run keeps what it measured."""
    import torch

    size = dict(size or hunyuan3.FULL_SIZE)
    data: dict[str, Any] = {
        "system": "hunyuan", "code": str(code), "width": width, "height": height, "steps": steps,
        "size": size, "full_layers": FULL_LAYERS,
        "param_counts": {k: int(v) for k, v in hunyuan3.param_counts(hunyuan3.FULL_SIZE).items()},
        "measured": {s: {} for s in settings}, "builds": {},
    }
    if device.startswith("cuda"):
        data["environment"] = engine.environment()
    save("hunyuan", data)
    for depth in depths:
        if left() < 90:
            data["builds"][str(depth)] = {"skipped": f"{left():.0f}s left"}
            break
        path = work / f"HunyuanL{depth}"
        t0 = time.monotonic()
        try:
            hunyuan3.build(code_dir=code, path=path, size=size | {"num_hidden_layers": depth},
                           vae=vae or hunyuan3.VAE_FULL, vit=vit or hunyuan3.VIT_FULL,
                           dtype=torch.bfloat16, device=device, steps=steps, seed=depth)
        except Exception:  # noqa: BLE001 - recorded; the next depth may still build
            data["builds"][str(depth)] = {"error": traceback.format_exc()[-3000:]}
            save("hunyuan", data)
            continue
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        weights = sum(p.stat().st_size for p in path.glob("*.safetensors"))
        data["builds"][str(depth)] = {"seconds": round(time.monotonic() - t0, 1), "gib_on_disk": round(weights / 2**30, 2)}
        save("hunyuan", data)
        for setting in settings:
            if setting == "nf4" and nf4_depths is not None and depth not in nf4_depths:
                continue
            if left() < 60:
                data["measured"][setting][str(depth)] = {"skipped": f"{left():.0f}s left"}
                continue
            print(f"== hunyuan L={depth} {setting} ({left():.0f}s left)", flush=True)
            spec = spec_for(path, setting=setting, width=width, height=height, steps=steps)
            result = (prof.measure(engine, spec, images=1) if device.startswith("cuda")
                      else _cpu_measure(engine, spec))
            data["measured"][setting][str(depth)] = result
            save("hunyuan", data)
            print(json.dumps(result)[:700], flush=True)
        shutil.rmtree(path, ignore_errors=True)
    keys = ("seconds", "peak_allocated_gib", "peak_reserved_gib", "load_peak_reserved_gib", "warmup_seconds")
    full: dict[str, Any] = {}
    for setting, rows in data["measured"].items():
        full[setting] = extrapolate({int(d): r for d, r in rows.items()}, keys)
    data["full_depth"] = full
    data["cards_predicted"] = predict_cards(full)
    save("hunyuan", data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="the vendor's hunyuan_image_3 directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hunyuan"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "var/hunyuan")))
    parser.add_argument("--depths", default="1,2")
    parser.add_argument("--settings", default="bf16,nf4")
    parser.add_argument("--budget-s", type=float, default=400)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="real hidden width on the CPU: 2 experts, 256² image base, 2 steps (checks shapes)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def save(name: str, data: dict) -> None:
        (args.out / f"cards_{name}.json").write_text(json.dumps(data, indent=2, default=str))

    def left() -> float:
        return args.budget_s - (time.monotonic() - start)

    if args.cpu_smoke:
        size = hunyuan3.FULL_SIZE | {"num_experts": 2, "moe_topk": 1, "image_base_size": 256}
        engine = Engine(device="cpu", overlap=False)
        run(save, engine, args.work, code=args.code, depths=(1, 2), settings=("bf16",), size=size,
            vit=hunyuan3.VIT_TINY, width=256, height=256, steps=2, device="cpu", left=left)
        return
    engine = Engine(device="cuda", oom_retry=False)
    run(save, engine, args.work, code=args.code, depths=tuple(int(d) for d in args.depths.split(",")),
        settings=tuple(args.settings.split(",")), left=left)
    print(f"total {time.monotonic() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
