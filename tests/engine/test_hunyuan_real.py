"""HunyuanImage-3.0's real modeling code (the vendor's, from ../shared, never copied into the repo):
a tiny configuration loaded through AutoModelForCausalLM(trust_remote_code) and rendered on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.engine import Engine, ModelSpec, RenderRequest, hunyuan3

CODE = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "third_party" / "HunyuanImage-3.0" / "hunyuan_image_3"

pytestmark = pytest.mark.skipif(not CODE.is_dir(), reason=f"vendor code not found at {CODE}")


def test_real_hunyuan_code_renders_one_image_on_the_cpu(tmp_path):
    path = hunyuan3.build(code_dir=CODE, path=tmp_path / "HunyuanTiny", steps=2)
    spec = ModelSpec(slug="hunyuan-real-tiny", source=str(path), backend="transformers", dtype="bfloat16",
                     num_inference_steps=2, width=64, height=64,
                     load_params={"attn_implementation": "sdpa", "moe_impl": "eager"})
    engine = Engine(device="cpu", overlap=False)
    [outcome] = list(engine.render(spec, [RenderRequest(key="a", prompt="a red fox", seed=3)]))
    assert outcome.ok, outcome.error
    assert (outcome.native_width, outcome.native_height) == (64, 64)
    loaded = engine.load(spec)
    assert type(loaded.model).__name__ == "HunyuanImage3ForCausalMM"  # the vendor's class, not a stand-in
