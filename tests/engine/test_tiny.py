"""The tiny models go through the real save_pretrained / from_pretrained path offline."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from generation.engine import Engine, RenderRequest, tiny


def _dir_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("entry", tiny.TINY_MODELS, ids=[e["slug"] for e in tiny.TINY_MODELS])
def test_tiny_model_is_small_saved_and_renders_fast(entry, tiny_dir, tiny_specs):
    path = tiny_dir / entry["slug"]
    assert _dir_bytes(path) < 5_000_000
    if entry["backend"] == "diffusers":
        index = json.loads((path / "model_index.json").read_text())
        assert index["_class_name"] == entry["pipeline_class"]
    else:
        config = json.loads((path / "config.json").read_text())
        assert "AutoModelForCausalLM" in config["auto_map"]  # its own modeling code, via trust_remote_code
    engine = Engine(device="cpu")
    start = time.perf_counter()
    [outcome] = engine.render(tiny_specs[entry["kind"]], [RenderRequest(key="a", prompt="a red fox", seed=1)])
    assert outcome.error == ""
    assert outcome.image.size == (entry["width"], entry["height"])
    assert outcome.seconds < 1.0
    assert time.perf_counter() - start < 30


def test_same_seed_same_image_and_seed_and_prompt_matter(tiny_specs):
    engine = Engine(device="cpu")
    for spec in tiny_specs.values():
        outs = list(engine.render(spec, [
            RenderRequest(key="1", prompt="a lighthouse at dusk", seed=7),
            RenderRequest(key="2", prompt="a lighthouse at dusk", seed=7),
            RenderRequest(key="3", prompt="a lighthouse at dusk", seed=8),
            RenderRequest(key="4", prompt="two cats on a sofa", seed=7),
        ]))
        a, b, c, d = (np.asarray(o.image, dtype=np.int16) for o in outs)
        assert np.array_equal(a, b), spec.slug
        assert np.abs(a - c).mean() > 1, f"{spec.slug}: the seed changes nothing"
        assert np.abs(a - d).mean() > 0, f"{spec.slug}: the prompt changes nothing"


def test_rebuild_with_same_seed_gives_same_weights(tmp_path):
    tiny.build_tiny_pipeline(kind="flux", path=tmp_path / "a", seed=5)
    tiny.build_tiny_pipeline(kind="flux", path=tmp_path / "b", seed=5)
    tiny.build_tiny_pipeline(kind="flux", path=tmp_path / "c", seed=6)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    a, b, c = ((tmp_path / x / weights).read_bytes() for x in "abc")
    assert a == b
    assert a != c


def test_demo_models_differ_visibly():
    """Different native sizes or steps, so a demo leaderboard is not a tie by construction."""
    settings = {(e["width"], e["height"], e["num_inference_steps"]) for e in tiny.TINY_MODELS}
    assert len(settings) == len(tiny.TINY_MODELS)
    assert len({e["slug"] for e in tiny.TINY_MODELS}) == len(tiny.TINY_MODELS)


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        tiny.build_tiny_pipeline(kind="dalle", path=tmp_path / "x", seed=0)
