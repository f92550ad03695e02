"""Tiny offline pipelines: the real from_pretrained path with no hub and no GPU.

Each builder makes a pipeline of the real class with random weights drawn from a fixed
seed and a tokenizer built from a local vocabulary, then saves it with save_pretrained.
The configs follow diffusers' own fast tests (get_dummy_components) with smaller
vocabularies. They are 1-5 MB and render on a CPU in well under a second. Their images
are noise-like, but the models differ in native size and steps, so a demo leaderboard
is not a tie by construction.
"""

from __future__ import annotations

import importlib.util
import shutil
import string
import sys
from pathlib import Path
from typing import Any

import torch

KINDS = ("sd3", "flux", "zimage", "ernie", "hunyuan")

# One tiny random-weight pipeline per real architecture (loading tests, benchmarks; `tiny_models_build`).
# `source` is chosen by the caller. The demo draws with generation.engine.demo_draw instead.
TINY_MODELS: list[dict[str, Any]] = [
    {
        "slug": "tiny-sd3", "name": "Tiny SD3 (demo)", "kind": "sd3", "seed": 3,
        "backend": "diffusers", "pipeline_class": "StableDiffusion3Pipeline", "dtype": "float32",
        "num_inference_steps": 6, "guidance_scale": 5.0, "width": 64, "height": 64,
        "extra_params": {"max_sequence_length": 32}, "load_params": {},
    },
    {
        "slug": "tiny-flux", "name": "Tiny FLUX (demo)", "kind": "flux", "seed": 5,
        "backend": "diffusers", "pipeline_class": "FluxPipeline", "dtype": "float32",
        "num_inference_steps": 4, "guidance_scale": 3.5, "width": 48, "height": 48,
        "extra_params": {"max_sequence_length": 32}, "load_params": {},
    },
    {
        "slug": "tiny-zimage", "name": "Tiny Z-Image Turbo (demo)", "kind": "zimage", "seed": 7,
        "backend": "diffusers", "pipeline_class": "ZImagePipeline", "dtype": "float32",
        "num_inference_steps": 2, "guidance_scale": 0.0, "width": 32, "height": 32,
        "extra_params": {"max_sequence_length": 32}, "load_params": {},
    },
    {
        # ERNIE-Image settings (CFG 4.0, use_pe=False for repeatable output); GEN may register
        # tiny-zimage as its fallback, like the reference "ERNIE falls back to Z-Image Turbo".
        "slug": "tiny-ernie", "name": "Tiny ERNIE-Image (demo)", "kind": "ernie", "seed": 9,
        "backend": "diffusers", "pipeline_class": "ErnieImagePipeline", "dtype": "float32",
        "num_inference_steps": 3, "guidance_scale": 4.0, "width": 80, "height": 80,
        "extra_params": {"use_pe": False}, "load_params": {}, "fallback": "tiny-zimage",
    },
    {
        "slug": "tiny-hunyuan", "name": "Tiny HunyuanImage-style (demo, transformers backend)", "kind": "hunyuan",
        "seed": 11, "backend": "transformers", "pipeline_class": "", "dtype": "float32",
        "num_inference_steps": 3, "guidance_scale": None, "width": 40, "height": 40,
        "extra_params": {}, "load_params": {},
    },
]

_CHARS = string.ascii_lowercase + string.digits + string.punctuation


# ----------------------------------------------------------------------------- tokenizers
def clip_tokenizer():
    """CLIP BPE with single-character pieces only (merges=[]): ids stay below 200."""
    # diffusers/transformers are imported by each builder: seconds each, and a builder needs only its own classes.
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _CHARS:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    """T5 Unigram over single characters; no <extra_id_*> tokens so ids stay below the vocab size."""
    # As above: each builder imports only its classes.
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(ch, -3.0) for ch in _CHARS]
    vocab += [("\u2581" + ch, -2.5) for ch in _CHARS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def qwen_tokenizer():
    """Byte-level BPE over the 256 byte symbols (no merges) + Qwen's chat special tokens."""
    # As above: each builder imports only its classes.
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<|endoftext|>": 0}
    for symbol in bytes_to_unicode().values():
        vocab[symbol] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=512)
    tok.add_tokens(["<|im_start|>", "<|im_end|>", "<think>", "</think>"], special_tokens=True)
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


# ----------------------------------------------------------------------------- shared parts
def _clip_config():
    # As above: each builder imports only its classes.
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=256,
        hidden_act="gelu", projection_dim=32,
    )


def _t5_encoder():
    # As above: each builder imports only its classes.
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=256, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))


def _fix_empty_parameters(module: torch.nn.Module) -> None:
    """Some tensors are made with torch.empty (e.g. Z-Image pad tokens): make them finite and fixed."""
    with torch.no_grad():
        for param in module.parameters():
            if not torch.isfinite(param).all():
                param.copy_(torch.ones_like(param))
        for name in ("x_pad_token", "cap_pad_token"):
            token = getattr(module, name, None)
            if token is not None:
                token.copy_(torch.ones_like(token))


# ----------------------------------------------------------------------------- builders
def _sd3():
    # As above: each builder imports only its classes.
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    # joint_attention_dim = T5 d_model (32); pooled_projection_dim = 2 x CLIP projection_dim (2 x 32).
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
    )
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        text_encoder=CLIPTextModelWithProjection(_clip_config()), tokenizer=clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config()), tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(), tokenizer_3=t5_tokenizer(),
    )


def _flux():
    # As above: each builder imports only its classes.
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    # joint_attention_dim = T5 d_model; pooled_projection_dim = CLIP hidden size; in_channels = 4 x latent channels.
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,
    )
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    return FluxPipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=CLIPTextModel(_clip_config()), tokenizer=clip_tokenizer(),
        text_encoder_2=_t5_encoder(), tokenizer_2=t5_tokenizer(),
    )


def _zimage():
    # As above: each builder imports only its classes.
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0,
        t_scale=1000.0, axes_dims=[8, 4, 4], axes_lens=[256, 32, 32],
    )
    _fix_empty_parameters(transformer)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], block_out_channels=[32, 32], layers_per_block=1,
        latent_channels=16, norm_num_groups=32, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
    )
    text_encoder = Qwen3Model(Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        head_dim=8, vocab_size=272, max_position_embeddings=512,
    ))
    return ZImagePipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        text_encoder=text_encoder, tokenizer=qwen_tokenizer(),
    )


def _ernie():
    # As above: each builder imports only its classes.
    from diffusers import (
        AutoencoderKLFlux2,
        ErnieImagePipeline,
        ErnieImageTransformer2DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import Mistral3Config, Mistral3Model

    # text_in_dim = the Ministral text hidden size; in_channels = 4 x VAE latent channels (2x2 patchify);
    # rope_axes_dim sums to the head dim (32 / 2 heads).
    text_encoder = Mistral3Model(Mistral3Config(
        text_config=dict(model_type="ministral3", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, head_dim=8, vocab_size=272,
                         max_position_embeddings=512),
        vision_config=dict(model_type="pixtral", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=16, head_dim=8),
        image_token_index=5, spatial_merge_size=1,
    ))
    transformer = ErnieImageTransformer2DModel(
        hidden_size=32, num_attention_heads=2, num_layers=2, ffn_hidden_size=64, in_channels=16, out_channels=16,
        patch_size=1, text_in_dim=16, rope_axes_dim=(4, 6, 6),
    )
    # adaLN gates and the output layer start at zero (identity blocks, zero prediction): give them
    # small random values, or the prompt would never reach the image of an untrained model.
    with torch.no_grad():
        for param in transformer.parameters():
            if param.dim() >= 1 and not param.any():
                param.normal_(0.0, 0.1)
    vae = AutoencoderKLFlux2(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=4,
        sample_size=32,
    )
    return ErnieImagePipeline(transformer=transformer, vae=vae, text_encoder=text_encoder,
                              tokenizer=qwen_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler())


def _hunyuan(path: Path) -> None:
    """A causal-LM-style model with its own code (auto_map) and a generate_image(), like HunyuanImage-3.0."""
    here = Path(__file__).parent / "tiny_hunyuan"
    path.mkdir(parents=True, exist_ok=True)
    for name in ("configuration_tiny_hunyuan.py", "modeling_tiny_hunyuan.py"):
        shutil.copyfile(here / name, path / name)
    # Import the code from the target directory (the same files from_pretrained will run).
    modules = {}
    for name in ("configuration_tiny_hunyuan", "modeling_tiny_hunyuan"):
        spec = importlib.util.spec_from_file_location(name, path / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path / name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules[name] = module
    try:
        config = modules["configuration_tiny_hunyuan"].TinyHunyuanConfig()
        model = modules["modeling_tiny_hunyuan"].TinyHunyuanForCausalLM(config)
        model.save_pretrained(path)
    finally:
        for name in modules:
            sys.modules.pop(name, None)


_BUILDERS = {"sd3": _sd3, "flux": _flux, "zimage": _zimage, "ernie": _ernie}


def build_tiny_pipeline(*, kind: str, path: Path, seed: int) -> None:
    """Build the tiny `kind` model with weights from `seed` and save it to `path` (replaced if present)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if kind == "hunyuan":
            _hunyuan(path)
            return
        pipe = _BUILDERS[kind]()
        pipe.save_pretrained(path, safe_serialization=True)
    finally:
        torch.random.set_rng_state(state)


def demo_spec_kwargs(entry: dict[str, Any], *, source: str) -> dict[str, Any]:
    """The ModelSpec keyword arguments of one TINY_MODELS entry."""
    keys = ("slug", "backend", "pipeline_class", "dtype", "num_inference_steps", "guidance_scale",
            "width", "height", "extra_params", "load_params")
    return {key: entry[key] for key in keys} | {"source": source}
