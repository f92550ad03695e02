"""HunyuanImage-3.0's real modeling code (the vendor's, from ../shared, never copied into the repo):
a tiny configuration loaded through AutoModelForCausalLM(trust_remote_code) and rendered on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generation.engine import Engine, ModelSpec, RenderRequest, hunyuan3

CODE = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "third_party" / "HunyuanImage-3.0" / "hunyuan_image_3"

pytestmark = pytest.mark.skipif(not CODE.is_dir(), reason=f"vendor code not found at {CODE}")
NF4_SIZE = hunyuan3.TINY | dict(intermediate_size=64, moe_intermediate_size=64, num_experts=32)


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


def test_real_hunyuan_code_renders_in_nf4_on_the_cpu(tmp_path):
    """bitsandbytes NF4 through the transformers backend: the decoder layers are quantized, the image-side
    modules stay bf16 (quantized, time_embed_2 cast its input to uint8: "GeluCUDAKernelImpl not implemented
    for 'Byte'" on the H200), and the quantizer imports beside the torchvision stand-in."""
    pytest.importorskip("bitsandbytes")
    # bitsandbytes' CPU kernel for AVX512-BF16 machines repacks each 4-bit weight in blocks of 64 inputs and 32
    # outputs ("shape '[64, 0]' is invalid" on a 16-wide expert): the quantized layers get those multiples
    path = hunyuan3.build(code_dir=CODE, path=tmp_path / "HunyuanTinyNf4", steps=2, size=NF4_SIZE)
    spec = ModelSpec(slug="hunyuan-real-tiny-nf4", source=str(path), backend="transformers", dtype="bfloat16",
                     quantization="4bit", num_inference_steps=2, width=64, height=64,
                     load_params={"attn_implementation": "sdpa", "moe_impl": "eager"})
    engine = Engine(device="cpu", overlap=False)
    [outcome] = list(engine.render(spec, [RenderRequest(key="a", prompt="a red fox", seed=3)]))
    assert outcome.ok, outcome.error
    model = engine.load(spec).model
    assert type(model.model.layers[0].mlp.experts[0].down_proj).__name__ == "Linear4bit"
    for name in ("timestep_emb", "time_embed", "time_embed_2"):
        assert getattr(model, name).mlp[0].weight.dtype == torch.bfloat16, name
