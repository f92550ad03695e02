"""Full-size (and reduced-depth) architectures of the reference models with random weights.

No hub is reachable on the GPU machines, and weights don't change speed: a FLUX.1 [dev] or
SD3.5 Large transformer built from its real config and random bf16 weights does the same
matrix work per step as the real one. Pipelines are assembled with the real diffusers
classes, saved with save_pretrained and then loaded back through from_pretrained, so the
engine's load path is the one timed. Tokenizers are the tiny local ones (token ids stay
below every vocab size); the sequence lengths the pipelines pad to are the real ones.

Used by benchmarks/gpu_proof.py and benchmarks/sweep_efficiency.py; needs a CUDA GPU.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from generation.engine import tiny

FLUX_DEV_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=[16, 56, 56],
)
SD35_LARGE_TRANSFORMER = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64, num_attention_heads=38,
    joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192, qk_norm="rms_norm",
)
ZIMAGE_TURBO_TRANSFORMER = dict(
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2,
    n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
)
VAE_16CH = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    latent_channels=16, norm_num_groups=32, sample_size=1024, use_quant_conv=False, use_post_quant_conv=False,
)
VAE_SCALING = {"flux": (0.3611, 0.1159), "sd3": (1.5305, 0.0609), "zimage": (0.3611, 0.1159)}
# T5-XXL (T5 v1.1 XXL encoder, 4.76B params), CLIP ViT-L/14 and OpenCLIP bigG text towers, Qwen3-4B.
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128,
              feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
              pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
              bos_token_id=0, eos_token_id=1, pad_token_id=1)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
              bos_token_id=0, eos_token_id=1, pad_token_id=1)
QWEN3_4B = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1_000_000.0, tie_word_embeddings=True)

# ERNIE-Image (issue 14): diffusers' own defaults of ErnieImageTransformer2DModel and AutoencoderKLFlux2
# (the released config.json files are not reachable offline: if they differ, the figures move with them).
# Text encoder: Mistral3Model (Ministral-3 text tower + Pixtral vision tower, as the pipeline's type
# hints say), text width = the transformer's text_in_dim (2560); depth and FFN width of Ministral-3 3B.
ERNIE_IMAGE_TRANSFORMER = dict(hidden_size=3072, num_attention_heads=24, num_layers=24, ffn_hidden_size=8192,
                               in_channels=128, out_channels=128, patch_size=1, text_in_dim=2560,
                               rope_axes_dim=(32, 48, 48))
MINISTRAL3_TEXT = dict(model_type="ministral3", hidden_size=2560, intermediate_size=9216, num_hidden_layers=26,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=131072,
                       max_position_embeddings=32768)

# Reduced depth for the sweep benchmark: same width and token counts, fewer blocks (~1 s/image).
MEDIUM_DEPTH = {"flux": dict(num_layers=4, num_single_layers=8), "sd3": dict(num_layers=8),
                "zimage": dict(n_layers=6, n_refiner_layers=2)}
MEDIUM_TEXT = {"t5": dict(num_layers=2, vocab_size=512), "qwen": dict(num_hidden_layers=2, vocab_size=512),
               "clip_g": dict(num_hidden_layers=4)}


BUILD_DEVICE = "cuda"  # a CPU works too for reduced sizes (smoke tests)


@contextmanager
def on_gpu_bf16():
    """Build modules directly on the GPU in bf16: seconds for 12B params instead of minutes on a CPU."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(BUILD_DEVICE):
            yield
    finally:
        torch.set_default_dtype(previous)


def _fix_nonfinite(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for param in module.parameters():
            if not torch.isfinite(param).all():
                param.copy_(torch.ones_like(param))


def t5_encoder(*, medium: bool = False):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**(T5_XXL | (MEDIUM_TEXT["t5"] if medium else {}))))


def _save_shared(module, path: Path) -> None:
    module.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")


def _save_pipeline(pipe, path: Path, *, linked: dict[str, tuple[str, str, Path]]) -> None:
    """save_pretrained, then point components built once (e.g. T5-XXL) at a shared directory."""
    pipe.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")
    if linked:
        index_path = path / "model_index.json"
        index = json.loads(index_path.read_text())
        for name, (library, cls, target) in linked.items():
            index[name] = [library, cls]
            if (path / name).exists():
                shutil.rmtree(path / name)
            (path / name).symlink_to(target.resolve(), target_is_directory=True)
        index_path.write_text(json.dumps(index, indent=2))


def build_shared_t5(path: Path, *, medium: bool = False, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    with on_gpu_bf16():
        model = t5_encoder(medium=medium)
    _save_shared(model, path)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def build(kind: str, path: Path, *, medium: bool = False, seed: int = 0, t5_dir: Path | None = None) -> Path:
    """Build and save a random-weight pipeline of `kind` ("flux", "sd3", "zimage") at `path`."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig

    if path.exists():
        shutil.rmtree(path)
    torch.manual_seed(seed)
    depth = MEDIUM_DEPTH.get(kind, {}) if medium else {}
    scaling, shift = VAE_SCALING.get(kind, (1.0, 0.0))
    linked: dict[str, tuple[str, str, Path]] = {}
    with on_gpu_bf16():
        vae = AutoencoderKL(**VAE_16CH, scaling_factor=scaling, shift_factor=shift)
        if kind == "flux":
            from diffusers import FluxPipeline, FluxTransformer2DModel
            from transformers import CLIPTextModel

            transformer = FluxTransformer2DModel(**(FLUX_DEV_TRANSFORMER | depth))
            t5 = None if t5_dir else t5_encoder(medium=medium)
            pipe = FluxPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(
                    shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                    base_image_seq_len=256, max_image_seq_len=4096),
                vae=vae, transformer=transformer,
                text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)), tokenizer=tiny.clip_tokenizer(),
                text_encoder_2=t5, tokenizer_2=tiny.t5_tokenizer(),
            )
            if t5_dir:
                linked["text_encoder_2"] = ("transformers", "T5EncoderModel", t5_dir)
        elif kind == "sd3":
            from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
            from transformers import CLIPTextModelWithProjection

            transformer = SD3Transformer2DModel(**(SD35_LARGE_TRANSFORMER | depth))
            t5 = None if t5_dir else t5_encoder(medium=medium)
            clip_g = CLIP_G | (MEDIUM_TEXT["clip_g"] if medium else {})
            pipe = StableDiffusion3Pipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae, transformer=transformer,
                text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L)), tokenizer=tiny.clip_tokenizer(),
                text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**clip_g)), tokenizer_2=tiny.clip_tokenizer(),
                text_encoder_3=t5, tokenizer_3=tiny.t5_tokenizer(),
            )
            if t5_dir:
                linked["text_encoder_3"] = ("transformers", "T5EncoderModel", t5_dir)
        elif kind == "zimage":
            from diffusers import ZImagePipeline, ZImageTransformer2DModel
            from transformers import Qwen3Config, Qwen3Model

            transformer = ZImageTransformer2DModel(**(ZIMAGE_TURBO_TRANSFORMER | depth))
            _fix_nonfinite(transformer)
            with torch.no_grad():
                transformer.x_pad_token.fill_(1.0)
                transformer.cap_pad_token.fill_(1.0)
            qwen = QWEN3_4B | (MEDIUM_TEXT["qwen"] if medium else {})
            pipe = ZImagePipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae, transformer=transformer,
                text_encoder=Qwen3Model(Qwen3Config(**qwen)), tokenizer=tiny.qwen_tokenizer(),
            )
        elif kind == "ernie":
            from diffusers import AutoencoderKLFlux2, ErnieImagePipeline, ErnieImageTransformer2DModel
            from transformers import Mistral3Config, Mistral3Model

            vae = AutoencoderKLFlux2()
            transformer = ErnieImageTransformer2DModel(**ERNIE_IMAGE_TRANSFORMER)
            with torch.no_grad():  # zero-initialised gates would make every block the identity
                for param in transformer.parameters():
                    if param.dim() >= 1 and not param.any():
                        param.normal_(0.0, 0.02)
            text = MINISTRAL3_TEXT | (dict(num_hidden_layers=2, vocab_size=512) if medium else {})
            pipe = ErnieImagePipeline(
                transformer=transformer, vae=vae,
                text_encoder=Mistral3Model(Mistral3Config(text_config=text, image_token_index=10)),
                tokenizer=tiny.qwen_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler(),
            )
        else:
            raise ValueError(f"unknown kind {kind!r}")
    _save_pipeline(pipe, path, linked=linked)
    del pipe, transformer, vae
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def dir_gib(path: Path) -> float:
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    for link in Path(path).iterdir():
        if link.is_symlink():
            files += [p for p in link.resolve().rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**30
