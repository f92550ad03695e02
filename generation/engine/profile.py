"""Which card can render a model, with which setting, how fast: the card-class profile (profile_vram).

Card classes are the GPU sizes users have (8/12/16/24/48/80 GB). A card of C GB is emulated
on a bigger one by capping PyTorch at C GiB minus the CUDA context (~0.7 GiB, which sits
outside torch's cap): `Engine.set_memory_cap`, i.e. `torch.cuda.set_per_process_memory_fraction`.

Method, so the figures are measured and not guessed:
1. every setting is rendered once uncapped: seconds per image, peak allocated/reserved while
   rendering, and the load's own peak (a load can need more than the render);
2. per card, from the smallest up, the settings whose peak *allocated* (a lower bound of what they
   need) is under the cap are tried fastest first, each loaded and rendered under the cap with the
   engine's own offload retry off; the first that renders is that card's setting. Settings within
   ``TIE`` of the fastest (one image each: a few percent is noise) count as equally fast, and the one
   that changes the model least goes first: exact weights (bf16, offload) before 8-bit before NF4, so
   a card where bf16 fits is never given NF4 for a 0.3 s gap.
Pure Python + torch, no Django: the profile_vram command and benchmarks call it alike.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .spec import EngineError, ModelSpec, OutOfMemory, RenderRequest

GIB = 2**30
CARD_CLASSES_GB = (8, 12, 16, 24, 48, 80)
CONTEXT_GIB = 0.7  # CUDA context + cuBLAS workspace outside torch's caching allocator (measured 0.6-0.7 GiB)

# (name, quantization, offload), roughly fastest first; the measured seconds decide.
SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("bf16", "none", "none"),
    ("nf4", "4bit", "none"),
    ("8bit", "8bit", "none"),
    ("model offload", "none", "model"),
    ("nf4 + model offload", "4bit", "model"),
    ("sequential offload", "none", "sequential"),
)
SETTING_NAMES = tuple(name for name, _, _ in SETTINGS)
# How much a setting changes the images: 0 exact weights (offload moves them, it does not change them), then
# 8-bit, then 4-bit. Among settings equally fast (within TIE of the fastest), the lowest goes first.
FIDELITY = {"bf16": 0, "model offload": 0, "sequential offload": 0, "8bit": 1, "nf4": 2, "nf4 + model offload": 2}
TIE = 0.05
PROMPT = "A red fox standing in fresh snow at dawn, photorealistic"


class NoGPU(EngineError):
    """profile_vram needs a CUDA GPU: on a CPU there is no VRAM to profile."""


def card_cap_bytes(card_gb: float) -> int:
    """What PyTorch may allocate on a card of `card_gb` GB (GiB, as vendors' 8/12/16/24 GB cards are)."""
    return int((card_gb - CONTEXT_GIB) * GIB)


def setting_spec(spec: ModelSpec, name: str) -> ModelSpec:
    _, quantization, offload = next(s for s in SETTINGS if s[0] == name)
    dtype = spec.dtype if spec.dtype != "float32" else "bfloat16"
    return dataclasses.replace(spec, quantization=quantization, offload=offload, dtype=dtype, fast_mode=False)


def _gib(value: int | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


def measure(engine: Any, spec: ModelSpec, *, images: int = 1, cap_bytes: int | None = None) -> dict[str, Any]:
    """Load (timed), warm up and render `images` images of `spec` under a cap; what it took, or the error."""
    engine.evict_all()
    engine.set_memory_cap(cap_bytes)
    start = time.perf_counter()
    result: dict[str, Any] = {"quantization": spec.quantization, "offload": spec.offload,
                              "cap_gib": _gib(cap_bytes)}
    try:
        loaded = engine.load(spec)
        outcomes = list(engine.render(spec, [RenderRequest(key=f"p{i}", prompt=PROMPT, seed=i)
                                             for i in range(images)]))
        errors = [o.error for o in outcomes if not o.ok]
        if errors:
            raise EngineError(errors[0])
        result.update(
            ok=True,
            seconds=round(statistics.median(o.seconds for o in outcomes), 3),
            all_seconds=[round(o.seconds, 3) for o in outcomes],
            peak_allocated_gib=_gib(max(o.peak_vram_allocated for o in outcomes)),
            peak_reserved_gib=_gib(max(o.peak_vram_reserved for o in outcomes)),
            load_peak_allocated_gib=_gib(loaded.load_peak_allocated),
            load_peak_reserved_gib=_gib(loaded.load_peak_reserved),
            load_seconds=round(loaded.load_seconds, 2),
            warmup_seconds=round(loaded.warmup_seconds, 2),
            offload_used=outcomes[0].offload_used,
            notes=list(loaded.notes),
        )
    except (OutOfMemory, EngineError) as exc:
        result.update(ok=False, oom=isinstance(exc, OutOfMemory), error=f"{type(exc).__name__}: {exc}"[:400])
    finally:
        engine.evict_all()
        engine.set_memory_cap(None)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def fastest_first(seconds: dict[str, float]) -> list[str]:
    """Setting names in the order a card tries them: those within TIE of the fastest first, the most faithful
    of them first (FIDELITY), then the rest by seconds."""
    if not seconds:
        return []
    best = min(seconds.values())
    return sorted(seconds, key=lambda n: (seconds[n] > best * (1 + TIE), FIDELITY.get(n, 3), seconds[n]))


def profile(engine: Any, spec: ModelSpec, *, cards: Sequence[float] = CARD_CLASSES_GB,
            settings: Sequence[str] = SETTING_NAMES, images: int = 1, verify: bool = True,
            measured: dict[str, dict[str, Any]] | None = None, on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The card-class profile of one model (see the module docstring). Raises NoGPU on a CPU.

    verify=False skips step 2 (GPU time): a card's setting is then the first (``fastest_first``) whose
    measured peaks (render and load, reserved) are under its cap, marked "predicted"."""
    if not str(engine.device).startswith("cuda"):
        raise NoGPU("profile_vram needs a CUDA GPU: this machine has none, so there is no VRAM to profile")
    if engine.oom_retry:
        raise ValueError("profile with Engine(oom_retry=False): a silent offload retry would hide the setting")
    report: dict[str, Any] = {"slug": spec.slug, "gpu_name": engine.gpu_name, "context_gib": CONTEXT_GIB,
                              "steps": spec.num_inference_steps, "width": spec.width, "height": spec.height,
                              "settings": {}, "cards": []}

    def emit() -> None:
        if on_result:
            on_result(report)

    sequential_allowed = "sequential offload" in settings
    for name in settings:
        if name == "sequential offload":
            continue  # measured below only if some card has no other setting: it is very slow
        if measured and name in measured:
            report["settings"][name] = measured[name]  # already measured by the caller (same spec)
            continue
        report["settings"][name] = measure(engine, setting_spec(spec, name), images=images)
        emit()
    for card in sorted(cards):
        cap = card_cap_bytes(card)
        cap_gib = cap / GIB
        candidates = fastest_first({n: r["seconds"] for n, r in report["settings"].items()
                                    if r.get("ok") and r["peak_allocated_gib"] <= cap_gib
                                    and (r.get("load_peak_allocated_gib") or 0) <= cap_gib})
        if not candidates and sequential_allowed and "sequential offload" not in report["settings"]:
            report["settings"]["sequential offload"] = measure(engine, setting_spec(spec, "sequential offload"),
                                                               images=1)
            emit()
            if report["settings"]["sequential offload"].get("ok"):
                candidates = ["sequential offload"]
        row: dict[str, Any] = {"card_gb": card, "cap_gib": round(cap_gib, 2), "tried": [], "setting": None}
        if not verify:
            for name in candidates:
                r = report["settings"][name]
                if max(r["peak_reserved_gib"], r.get("load_peak_reserved_gib") or 0) <= cap_gib:
                    row.update(setting=name, seconds=r["seconds"], peak_allocated_gib=r["peak_allocated_gib"],
                               peak_reserved_gib=r["peak_reserved_gib"], predicted=True)
                    break
            report["cards"].append(row)
            continue
        for name in candidates:
            trial = measure(engine, setting_spec(spec, name), images=1, cap_bytes=cap)
            row["tried"].append({"setting": name} | trial)
            if trial.get("ok"):
                row.update(setting=name, seconds=trial["seconds"], peak_allocated_gib=trial["peak_allocated_gib"],
                           peak_reserved_gib=trial["peak_reserved_gib"],
                           load_peak_reserved_gib=trial["load_peak_reserved_gib"])
                break
        report["cards"].append(row)
        emit()
    fits = [row for row in report["cards"] if row["setting"]]
    report["min_card"] = ({"card_gb": fits[0]["card_gb"], "setting": fits[0]["setting"]} if fits else None)
    return report
