"""A tiny custom diffusers pipeline that hangs on prompts containing "[hang]" (the watchdog tests).

Its whole code lives in the model directory (``pipeline_stall.py``), loaded through the worker's
ordinary path, ``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``. Other prompts
render a flat 64² image after reporting each denoising step through ``callback_on_step_end``.
"""

from __future__ import annotations

import json
from pathlib import Path

HANG = "[hang]"
SOURCE = '''
import threading

from diffusers import DiffusionPipeline, ImagePipelineOutput
from PIL import Image


class StallPipeline(DiffusionPipeline):
    def __init__(self):
        super().__init__()

    def __call__(self, prompt, num_inference_steps=3, width=64, height=64, generator=None, output_type="pil",
                 callback_on_step_end=None, **_ignored):
        text = prompt[0] if isinstance(prompt, list) else prompt
        for index in range(num_inference_steps):
            if callback_on_step_end is not None:
                callback_on_step_end(self, index, index, {})
            if "[hang]" in text and index == 0:
                threading.Event().wait()  # a call that never returns, as a hung CUDA kernel would
        seed = int(generator.initial_seed()) if generator is not None else 0
        return ImagePipelineOutput(images=[Image.new("RGB", (width, height), (seed * 40 % 256, 80, 120))])
'''
MODEL = {"slug": "stall", "name": "Stall (test)", "kind": "stall", "backend": "diffusers", "pipeline_class": "",
         "dtype": "float32", "num_inference_steps": 3, "guidance_scale": None, "width": 64, "height": 64,
         "extra_params": {}, "load_params": {"trust_remote_code": True}}


def build_stall_pipeline(path: Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model_index.json").write_text(json.dumps(
        {"_class_name": ["pipeline_stall", "StallPipeline"], "_diffusers_version": "0.42.1"}) + "\n")
    (path / "pipeline_stall.py").write_text(SOURCE)
    return path
