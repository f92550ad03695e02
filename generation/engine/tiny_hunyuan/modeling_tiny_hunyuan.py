"""A tiny model with HunyuanImage-3.0's interface: AutoModelForCausalLM + load_tokenizer() + generate_image().

It is loaded through the real `from_pretrained(..., trust_remote_code=True)` path. Its image
depends on the prompt (byte tokens), the seed and the step count, like the real one's.
"""

import torch
from PIL import Image
from torch import nn
from transformers import PreTrainedModel

try:
    from .configuration_tiny_hunyuan import TinyHunyuanConfig
except ImportError:  # imported as a plain module by the builder
    from configuration_tiny_hunyuan import TinyHunyuanConfig


class TinyHunyuanForCausalLM(PreTrainedModel):
    config_class = TinyHunyuanConfig
    base_model_prefix = "tiny_hunyuan"
    _no_split_modules = []

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.cond = nn.Linear(config.hidden_size, config.latent_channels)
        self.denoise = nn.Sequential(
            nn.Conv2d(config.latent_channels, config.hidden_size, 3, padding=1), nn.SiLU(),
            nn.Conv2d(config.hidden_size, config.latent_channels, 3, padding=1),
        )
        self.decode = nn.Conv2d(config.latent_channels, 3 * config.patch * config.patch, 1)
        self.tokenizer = None
        self.post_init()

    def forward(self, input_ids, **kwargs):
        return self.lm_head(self.embed(input_ids))

    def load_tokenizer(self, path):
        """The real model loads its tokenizer from the checkpoint; bytes are this model's tokens."""
        self.tokenizer = lambda text: [3 + b for b in text.encode("utf-8")][:256] or [0]

    @torch.no_grad()
    def generate_image(self, prompt, seed=0, image_size="64x64", diff_infer_steps=8, stream=False, **kwargs):
        width, height = (int(v) for v in str(image_size).lower().split("x"))
        patch = self.config.patch
        if width % patch or height % patch:
            raise ValueError(f"image_size must be a multiple of {patch}, got {image_size}")
        tokens = (self.tokenizer or (lambda t: [3 + b for b in t.encode("utf-8")] or [0]))(prompt)
        device = self.embed.weight.device
        ids = torch.tensor(tokens, device=device)
        condition = self.cond(self.embed(ids).mean(0)).view(1, -1, 1, 1)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = torch.randn(
            (1, self.config.latent_channels, height // patch, width // patch), generator=generator
        ).to(device=device, dtype=self.embed.weight.dtype)
        for step in range(int(diff_infer_steps)):
            latents = latents - self.denoise(latents + condition) / (step + 2)
        pixels = nn.functional.pixel_shuffle(self.decode(latents), patch)
        pixels = (torch.tanh(pixels * 4) + 1) * 127.5
        array = pixels[0].permute(1, 2, 0).round().to(torch.uint8).cpu().numpy()
        return Image.fromarray(array, mode="RGB")
