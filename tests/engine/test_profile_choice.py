"""Which setting a card class gets (generation.engine.profile): the fastest, where a few percent on one timed
image count as a tie that the setting changing the model least wins. The selection runs on the measured
settings as profile() stores them (verify=False: the card's setting is predicted from the uncapped peaks)."""

from __future__ import annotations

from types import SimpleNamespace

from generation.engine import ModelSpec
from generation.engine.profile import TIE, fastest_first, profile


def _measured(seconds: float, peak: float) -> dict:
    return {"ok": True, "seconds": seconds, "peak_allocated_gib": peak, "peak_reserved_gib": peak + 0.5,
            "load_peak_allocated_gib": peak, "load_peak_reserved_gib": peak + 0.5}


def test_equally_fast_settings_go_most_faithful_first():
    assert fastest_first({}) == []
    # ERNIE-Image on the H200: NF4 timed 0.32 s faster than bf16 (3.6%): a tie, bf16 first
    assert fastest_first({"nf4": 8.90, "bf16": 9.22, "8bit": 12.0}) == ["bf16", "nf4", "8bit"]
    # a real gap is not a tie: NF4 at 24 GB is faster than bf16 with model offload by far
    assert fastest_first({"model offload": 35.0, "nf4": 9.5}) == ["nf4", "model offload"]
    # just outside the tie the faster one stays first
    assert fastest_first({"nf4": 10.0, "bf16": 10.0 * (1 + TIE) + 0.01}) == ["nf4", "bf16"]
    # among exact-weight settings in a tie, the faster; 8-bit before NF4
    assert fastest_first({"model offload": 10.1, "bf16": 10.0, "8bit": 10.2, "nf4": 9.9}) == \
        ["bf16", "model offload", "8bit", "nf4"]


def test_each_card_gets_its_setting_from_the_measured_peaks():
    engine = SimpleNamespace(device="cuda:0", oom_retry=False, gpu_name="NVIDIA H200")
    spec = ModelSpec(slug="ernie-like", source="org/ernie-like", backend="diffusers", num_inference_steps=28)
    measured = {"bf16": _measured(9.22, 40.0), "nf4": _measured(8.90, 20.0), "8bit": _measured(12.0, 28.0),
                "model offload": _measured(30.0, 15.0), "nf4 + model offload": _measured(14.0, 6.5)}
    report = profile(engine, spec, cards=(8, 24, 48, 80), settings=tuple(measured), verify=False, measured=measured)
    chosen = {row["card_gb"]: row["setting"] for row in report["cards"]}
    assert chosen == {8: "nf4 + model offload", 24: "nf4", 48: "bf16", 80: "bf16"}
    assert all(row["predicted"] for row in report["cards"])
    assert report["min_card"] == {"card_gb": 8, "setting": "nf4 + model offload"}
