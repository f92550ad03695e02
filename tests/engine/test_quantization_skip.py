"""Issue 14 engine fixes found on the H200: bitsandbytes on the transformers backend leaves the modules an architecture needs unquantized (issue 14:
HunyuanImage-3.0's TimestepEmbedder casts its input to its weight's dtype, uint8 once quantized, and the
first call on an H200 failed with "GeluCUDAKernelImpl not implemented for 'Byte'")."""

from __future__ import annotations

import json

import pytest

from generation.engine import LoadError, ModelSpec, hunyuan3, loading


def _spec(tmp_path, *, architectures, quantization="4bit", **load_params):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": architectures, "model_type": "x"}))
    return ModelSpec(slug="m", source=str(tmp_path), backend="transformers", quantization=quantization,
                     load_params=load_params)


def test_hunyuan_keeps_its_image_side_modules_unquantized(tmp_path):
    for bits, flag in (("4bit", "load_in_4bit"), ("8bit", "load_in_8bit")):
        config = loading.transformers_quantization(_spec(tmp_path, architectures=[hunyuan3.ARCHITECTURE],
                                                         quantization=bits))
        assert getattr(config, flag)
        assert config.llm_int8_skip_modules == list(hunyuan3.QUANT_SKIP_MODULES)
    # transformers matches a name up to a module boundary: "time_embed" does not cover "time_embed_2"
    assert {"timestep_emb", "time_embed", "time_embed_2"} <= set(hunyuan3.QUANT_SKIP_MODULES)
    assert "model" not in hunyuan3.QUANT_SKIP_MODULES


def test_other_architectures_keep_the_library_default(tmp_path):
    config = loading.transformers_quantization(_spec(tmp_path, architectures=["LlamaForCausalLM"]))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.llm_int8_skip_modules is None


def test_load_params_name_the_modules_and_are_checked(tmp_path):
    spec = _spec(tmp_path, architectures=[hunyuan3.ARCHITECTURE], quantization_skip_modules=["lm_head"])
    assert loading.transformers_quantization(spec).llm_int8_skip_modules == ["lm_head"]
    with pytest.raises(LoadError, match="quantization_skip_modules"):
        loading.transformers_quantization(_spec(tmp_path, architectures=[], quantization_skip_modules="lm_head"))


def test_memory_cap_device_index_for_a_bare_cuda_device():
    """set_per_process_memory_fraction needs an index: "cuda" is the current device, "cuda:N" is N."""
    from generation.engine.engine import cuda_index

    assert cuda_index("cuda", current=lambda: 3) == 3
    assert cuda_index("cuda:1", current=lambda: 3) == 1
