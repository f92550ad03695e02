"""HunyuanImage-3.0 model directories built from the vendor's own modeling code (issue 14).

The vendor's code (Tencent Hunyuan Community License) is never part of this repository: callers
pass the directory that holds it (tests: ../shared/testdata/third_party/HunyuanImage-3.0/
hunyuan_image_3) and it is copied into the model directory being built, as on the hub, where
`trust_remote_code` finds it through `auto_map`. Weights are random; the configuration is either
tiny (CPU tests) or the full width with fewer layers (GPU per-layer measurements).

A model directory's name must not contain dots: transformers imports remote code as a package
named after the directory.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from .compat import install_remote_code_shims

AUTO_MAP = {
    "AutoConfig": "configuration_hunyuan.HunyuanImage3Config",
    "AutoModel": "hunyuan.HunyuanImage3ForCausalMM",
    "AutoModelForCausalLM": "hunyuan.HunyuanImage3ForCausalMM",
}
# Tokens the vendor's TokenizerWrapper and generate_image() look up by name.
SPECIAL_TOKENS = [
    "<|startoftext|>", "<|endoftext|>", "<pad>", "<boi>", "<eoi>", "<img>", "<cfg>", "<timestep>", "<guidance>",
    "<joint_img_sep>", "<answer>", "</answer>", "<think>", "</think>", "<recaption>", "</recaption>",
]
# Modules bitsandbytes must leave in bf16 (everything but the decoder layers, model.layers, which
# hold ~99% of the parameters): the image-side modules read their own weight dtype to cast inputs
# (TimestepEmbedder: `.type(self.mlp[0].weight.dtype)`), which is uint8 once quantized, and the
# first call fails with "GeluCUDAKernelImpl not implemented for 'Byte'" (seen on an H200, issue 14).
ARCHITECTURE = "HunyuanImage3ForCausalMM"
QUANT_SKIP_MODULES = ("vae", "vision_model", "vision_aligner", "timestep_emb", "patch_embed", "time_embed", "time_embed_2",
                      "final_layer", "lm_head")
N_RATIOS = 33  # ResolutionGroup has 33 aspect ratios (ratio index 16 is 1:1)

# What the released model is, where the published facts pin it: 64 experts, 80B parameters in
# total, 13B active per token (README). Layer count and widths are not in the published material
# we have; these values (the widely quoted config.json) reproduce 80B / 13B within a few percent,
# see param_counts().
FULL_SIZE = dict(
    hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    attention_head_dim=128, intermediate_size=3072, moe_intermediate_size=3072, num_experts=64, moe_topk=8,
    num_shared_expert=1, use_mixed_mlp_moe=True, vocab_size=133120, use_qk_norm=True, image_base_size=1024,
    patch_embed_hidden_dim=1024, rope_theta=10000.0, max_position_embeddings=22800,
    rope_scaling={"type": "custom", "factor": 1.0},
)
TINY = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, attention_head_dim=16,
    intermediate_size=32, moe_intermediate_size=16, num_experts=4, moe_topk=2, num_shared_expert=1,
    use_mixed_mlp_moe=True, vocab_size=512, use_qk_norm=True, image_base_size=64, patch_embed_hidden_dim=32,
    rope_theta=10000.0, max_position_embeddings=4096, rope_scaling={"type": "custom", "factor": 1.0},
)
VAE_FULL = dict(in_channels=3, out_channels=3, latent_channels=32, block_out_channels=[128, 256, 512, 1024, 1024],
                layers_per_block=2, ffactor_spatial=16, ffactor_temporal=4, sample_size=384, sample_tsize=96,
                scaling_factor=0.562679178327931, downsample_match_channel=True, upsample_match_channel=True)
VAE_TINY = VAE_FULL | dict(latent_channels=4, block_out_channels=[32, 32, 32, 32, 32], layers_per_block=1)
VIT_FULL = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                num_channels=3, num_patches=256, patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
                attention_dropout=0.0, vision_use_head=False, _attn_implementation="sdpa",
                attn_implementation="sdpa", output_attentions=False, output_hidden_states=False,
                use_return_dict=True)
VIT_TINY = VIT_FULL | dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           num_patches=16)


def tokenizer(*, vocab_size: int):
    """Byte-level BPE over the 256 byte symbols (no merges) + the special tokens the wrapper needs."""
    # transformers takes seconds to import: loaded by the builder that needs it.
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {}
    for symbol in bytes_to_unicode().values():
        vocab[symbol] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=8192, bos_token="<|startoftext|>",
                         eos_token="<|endoftext|>", pad_token="<pad>", unk_token=None)
    extra = SPECIAL_TOKENS + [f"<img_ratio_{i}>" for i in range(N_RATIOS)]
    extra += [f"<img_size_{s}>" for s in (64, 128, 256, 512, 768, 1024, 1280, 1536, 2048)]
    tok.add_tokens(extra, special_tokens=True)
    if len(tok) > vocab_size:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the model's vocab_size {vocab_size}")
    return tok


def config_dict(*, size: dict[str, Any], vae: dict[str, Any], vit: dict[str, Any], tok: Any) -> dict[str, Any]:
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("bos_token_id", "<|startoftext|>"), ("eos_token_id", "<|endoftext|>"), ("pad_token_id", "<pad>"))}
    return size | ids | dict(
        model_type="Hunyuan", architectures=[ARCHITECTURE], auto_map=AUTO_MAP,
        pad_id=ids["pad_token_id"], eod_token_id=ids["eos_token_id"],
        image_token_id=tok.convert_tokens_to_ids("<img>"),
        moe_impl="eager", img_proj_type="unet", patch_size=1, vae_downsample_factor=[16, 16],
        vae=vae, vit=vit,
        vit_processor={"do_normalize": True, "do_rescale": True, "do_resize": True, "max_num_patches": 16,
                       "patch_size": 16, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                       "resample": 2, "rescale_factor": 1 / 255, "image_processor_type": "Siglip2ImageProcessorFast"},
        vit_aligner={"projector_type": "mlp_gelu", "input_dim": vit["hidden_size"], "n_embed": size["hidden_size"],
                     "depth": 2},
        rms_norm_eps=1e-5, hidden_act="silu", norm_type="rms", tie_word_embeddings=False, use_cache=True,
        dtype="bfloat16",
    )


GENERATION_CONFIG = dict(
    bot_task="image", use_system_prompt="None", drop_think=False, diff_infer_steps=50, diff_guidance_scale=5.0,
    flow_shift=3.0, sequence_template="pretrain", max_length=12800, do_sample=False, temperature=1.0, top_k=1,
    top_p=1.0, repetition_penalty=1.0,
)


def build(*, code_dir: Path, path: Path, size: dict[str, Any] = TINY, vae: dict[str, Any] = VAE_TINY,
          vit: dict[str, Any] = VIT_TINY, dtype: torch.dtype = torch.float32, seed: int = 0,
          device: str = "cpu", steps: int | None = None) -> Path:
    """Write a loadable model directory: the vendor's code, config.json with auto_map, random weights,
    generation_config.json and a tokenizer the vendor's TokenizerWrapper accepts."""
    code_dir = Path(code_dir)
    if "." in path.name:
        raise ValueError(f"{path.name!r}: transformers can't import remote code from a directory with dots")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    for source in code_dir.glob("*.py"):
        if source.name != "__init__.py":
            shutil.copyfile(source, path / source.name)
    tok = tokenizer(vocab_size=size["vocab_size"])
    tok.save_pretrained(path)
    config = config_dict(size=size, vae=vae, vit=vit, tok=tok)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    generation = GENERATION_CONFIG | ({"diff_infer_steps": steps} if steps else {}) | {
        "bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"]}
    (path / "generation_config.json").write_text(json.dumps(generation, indent=2))
    # Instantiate through transformers' own dynamic-module loader (the code that from_pretrained runs);
    # transformers takes seconds to import, so only this builder loads it.
    from transformers import AutoConfig, AutoModelForCausalLM

    install_remote_code_shims()
    hf_config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=True, dtype=dtype)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")
    # save_pretrained rewrote config.json: keep our auto_map and copied code (it may drop either)
    saved = json.loads((path / "config.json").read_text())
    saved["auto_map"] = AUTO_MAP
    (path / "config.json").write_text(json.dumps(saved, indent=2))
    (path / "generation_config.json").write_text(json.dumps(generation, indent=2))
    del model
    _ = importlib, sys
    return path


def param_counts(size: dict[str, Any] = FULL_SIZE) -> dict[str, float]:
    """Total and active (per token) parameters of the LLM backbone + head, from the config alone."""
    h, layers = size["hidden_size"], size["num_hidden_layers"]
    head_dim, heads, kv = size["attention_head_dim"], size["num_attention_heads"], size["num_key_value_heads"]
    attention = h * head_dim * (heads + 2 * kv) + heads * head_dim * h
    expert = 3 * h * size["moe_intermediate_size"]
    shared = 3 * h * size["intermediate_size"] * size["num_shared_expert"]
    gate = h * size["num_experts"]
    per_layer_total = attention + size["num_experts"] * expert + shared + gate
    per_layer_active = attention + size["moe_topk"] * expert + shared + gate
    embeddings = 2 * size["vocab_size"] * h  # wte + lm_head
    return {"per_layer_total": per_layer_total, "per_layer_active": per_layer_active,
            "total": layers * per_layer_total + embeddings, "active": layers * per_layer_active + embeddings,
            "embeddings": embeddings}
