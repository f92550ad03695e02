"""Config of the tiny HunyuanImage-3.0 stand-in (copied into the model directory, loaded via auto_map)."""

from transformers import PretrainedConfig


class TinyHunyuanConfig(PretrainedConfig):
    model_type = "tiny_hunyuan_image"

    def __init__(self, vocab_size=259, hidden_size=32, latent_channels=4, patch=4, initializer_range=0.5, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.latent_channels = latent_channels
        self.patch = patch
        self.initializer_range = initializer_range
        kwargs.setdefault("auto_map", {
            "AutoConfig": "configuration_tiny_hunyuan.TinyHunyuanConfig",
            "AutoModelForCausalLM": "modeling_tiny_hunyuan.TinyHunyuanForCausalLM",
        })
        super().__init__(**kwargs)
