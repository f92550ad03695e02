"""The demo painters: a small custom diffusers pipeline that draws what a prompt names.

``DemoDrawPipeline`` is a ``DiffusionPipeline`` with one tiny component, ``DemoPainter``
(a ``ModelMixin``: its config holds the painter's flaws, its one weight is the blur kernel
of its finish). ``save_demo_painter`` saves it with ``save_pretrained`` and registers it the
way a custom pipeline is registered on the hub: ``model_index.json`` names
``["pipeline_demo_draw", "DemoDrawPipeline"]`` and the directory carries
``pipeline_demo_draw.py``, so ``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``
(the worker's ordinary load path, with ``load_params = {"trust_remote_code": true}``) loads it.
Drawing is PIL, the finish is a torch convolution and seeded grain: fast and deterministic.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from PIL import Image, ImageDraw, ImageFont

from .scene import COLOURS, Flaws, Plan, plan_image

KERNEL = 9  # blur kernel size (odd)
FONT_FILES = (  # Latin, then CJK; Debian paths (fonts-dejavu-core, fonts-wqy-microhei)
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
CJK_FONT_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
SHIM = "pipeline_demo_draw"


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    if sigma <= 0:
        k = torch.zeros(KERNEL, KERNEL)
        k[KERNEL // 2, KERNEL // 2] = 1.0
        return k
    x = torch.arange(KERNEL, dtype=torch.float32) - KERNEL // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return k / k.sum()


class DemoPainter(ModelMixin, ConfigMixin):
    """The painter's flaws (config) and the blur kernel of its finish (its one weight)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, text_misspell: float = 0.0, text_missing: float = 0.0, misspell_chars: int = 1,
                 colour_error: float = 0.0, object_missing: float = 0.0, blur: float = 0.0, noise: float = 0.0):
        super().__init__()
        self.kernel = torch.nn.Parameter(_gaussian_kernel(blur), requires_grad=False)

    @property
    def flaws(self) -> Flaws:
        return Flaws(**{k: self.config[k] for k in Flaws.__dataclass_fields__})

    def finish(self, image: Image.Image, *, generator: torch.Generator | None) -> Image.Image:
        """Blur with the kernel, then add grain drawn from the call's generator."""
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        weight = self.kernel.detach().to(torch.float32)[None, None].repeat(3, 1, 1, 1)
        x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, [KERNEL // 2] * 4, mode="replicate"), weight, groups=3)
        if self.config.noise > 0:
            x = x + self.config.noise * torch.randn(x.shape, generator=generator)
        out = x.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
        return Image.fromarray(out, "RGB")


def _font(size: int, *, cjk: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in (CJK_FONT_FILES if cjk else FONT_FILES):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _has_cjk(text: str) -> bool:
    return any("\u3000" <= ch <= "\u9fff" for ch in text)


def _rgb(name: str) -> tuple[int, int, int]:
    return COLOURS.get(name, (128, 128, 128))


def _draw_shape(d: ImageDraw.ImageDraw, shape: str, colour: str, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    c, edge = _rgb(colour), (30, 30, 30)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape in ("ball", "sun"):
        d.ellipse(box, fill=c, outline=edge, width=2)
    elif shape == "apple":
        d.ellipse((x0, y0 + h * 0.15, x1, y1), fill=c, outline=edge, width=2)
        d.line((cx, y0 + h * 0.2, cx + w * 0.1, y0), fill=(90, 60, 20), width=3)
        d.ellipse((cx, y0, cx + w * 0.3, y0 + h * 0.15), fill=(40, 150, 50))
    elif shape == "box":
        d.rectangle((x0 + w * 0.1, y0 + h * 0.25, x1 - w * 0.1, y1), fill=c, outline=edge, width=2)
        d.polygon([(x0 + w * 0.1, y0 + h * 0.25), (x0 + w * 0.3, y0 + h * 0.05), (x1 + 0, y0 + h * 0.05),
                   (x1 - w * 0.1, y0 + h * 0.25)], fill=c, outline=edge)
    elif shape == "cup":
        d.rectangle((x0 + w * 0.15, y0 + h * 0.3, x1 - w * 0.3, y1), fill=c, outline=edge, width=2)
        d.arc((x1 - w * 0.45, y0 + h * 0.4, x1 - w * 0.05, y0 + h * 0.8), -90, 90, fill=edge, width=3)
    elif shape == "car":
        d.rectangle((x0, y0 + h * 0.45, x1, y1 - h * 0.15), fill=c, outline=edge, width=2)
        d.polygon([(x0 + w * 0.2, y0 + h * 0.45), (x0 + w * 0.35, y0 + h * 0.2), (x1 - w * 0.3, y0 + h * 0.2),
                   (x1 - w * 0.15, y0 + h * 0.45)], fill=c, outline=edge)
        for fx in (0.25, 0.75):
            d.ellipse((x0 + w * fx - h * 0.13, y1 - h * 0.28, x0 + w * fx + h * 0.13, y1), fill=(20, 20, 20))
    elif shape in ("dog", "cat"):
        d.ellipse((x0 + w * 0.1, y0 + h * 0.45, x1 - w * 0.1, y1 - h * 0.05), fill=c, outline=edge, width=2)
        d.ellipse((cx - w * 0.22, y0 + h * 0.1, cx + w * 0.22, y0 + h * 0.5), fill=c, outline=edge, width=2)
        if shape == "cat":
            d.polygon([(cx - w * 0.2, y0 + h * 0.2), (cx - w * 0.12, y0), (cx - w * 0.04, y0 + h * 0.15)], fill=c)
            d.polygon([(cx + w * 0.2, y0 + h * 0.2), (cx + w * 0.12, y0), (cx + w * 0.04, y0 + h * 0.15)], fill=c)
        else:
            d.ellipse((cx - w * 0.3, y0 + h * 0.15, cx - w * 0.15, y0 + h * 0.4), fill=(60, 40, 20))
            d.ellipse((cx + w * 0.15, y0 + h * 0.15, cx + w * 0.3, y0 + h * 0.4), fill=(60, 40, 20))
    elif shape == "tree":
        d.rectangle((cx - w * 0.06, y1 - h * 0.25, cx + w * 0.06, y1), fill=(100, 60, 30))
        d.polygon([(cx, y0), (x0 + w * 0.1, y1 - h * 0.2), (x1 - w * 0.1, y1 - h * 0.2)], fill=c, outline=edge)
    elif shape == "house":
        d.rectangle((x0 + w * 0.1, y0 + h * 0.4, x1 - w * 0.1, y1), fill=c, outline=edge, width=2)
        d.polygon([(x0, y0 + h * 0.42), (cx, y0 + h * 0.05), (x1, y0 + h * 0.42)], fill=(150, 50, 40), outline=edge)
        d.rectangle((cx - w * 0.1, y1 - h * 0.3, cx + w * 0.1, y1), fill=(60, 40, 30))
    elif shape == "bottle":
        d.rectangle((cx - w * 0.22, y0 + h * 0.35, cx + w * 0.22, y1), fill=c, outline=edge, width=2)
        d.rectangle((cx - w * 0.08, y0, cx + w * 0.08, y0 + h * 0.35), fill=c, outline=edge, width=2)
    elif shape == "headphone":
        d.arc((x0 + w * 0.1, y0, x1 - w * 0.1, y1 - h * 0.2), 180, 360, fill=c, width=max(3, int(w * 0.08)))
        d.rectangle((x0 + w * 0.05, cy, x0 + w * 0.28, y1 - h * 0.1), fill=c)
        d.rectangle((x1 - w * 0.28, cy, x1 - w * 0.05, y1 - h * 0.1), fill=c)
    elif shape == "person":
        d.ellipse((cx - w * 0.15, y0, cx + w * 0.15, y0 + h * 0.3), fill=(235, 195, 160), outline=edge)
        d.polygon([(cx, y0 + h * 0.3), (x0 + w * 0.15, y1), (x1 - w * 0.15, y1)], fill=c, outline=edge)
    elif shape == "mountain":
        d.polygon([(x0, y1), (cx, y0), (x1, y1)], fill=c, outline=edge)
        d.polygon([(cx, y0), (cx - w * 0.12, y0 + h * 0.25), (cx + w * 0.12, y0 + h * 0.25)], fill=(250, 250, 250))
    elif shape == "lake":
        d.ellipse((x0, y0 + h * 0.4, x1, y1), fill=c, outline=edge)
    elif shape == "lantern":
        d.ellipse((x0 + w * 0.2, y0 + h * 0.15, x1 - w * 0.2, y1 - h * 0.1), fill=c, outline=edge, width=2)
        d.line((cx, y0, cx, y0 + h * 0.15), fill=edge, width=2)
    elif shape == "chart":
        d.rectangle(box, fill=(245, 245, 245), outline=edge)
        pts = [(x0 + w * t, y1 - h * (0.2 + 0.6 * abs(math.sin(3 * t)))) for t in np.linspace(0.05, 0.95, 8)]
        d.line(pts, fill=c, width=3)
    elif shape == "flower":
        for a in range(5):
            px, py = cx + w * 0.22 * math.cos(a * 1.256), cy - h * 0.1 + h * 0.22 * math.sin(a * 1.256)
            d.ellipse((px - w * 0.15, py - h * 0.15, px + w * 0.15, py + h * 0.15), fill=c)
        d.ellipse((cx - w * 0.1, cy - h * 0.2, cx + w * 0.1, cy), fill=(250, 220, 40))
        d.line((cx, cy, cx, y1), fill=(40, 140, 40), width=3)
    elif shape == "bird":
        d.arc((x0, cy - h * 0.2, cx, cy + h * 0.2), 200, 340, fill=c, width=3)
        d.arc((cx, cy - h * 0.2, x1, cy + h * 0.2), 200, 340, fill=c, width=3)
    else:
        d.rectangle(box, fill=c, outline=edge)


def draw_plan(plan: Plan, *, width: int, height: int) -> Image.Image:
    """The plan as a picture: background gradient, objects in a row, text strings on a sign."""
    top, bottom = plan.background
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    grad = (np.array(top)[None, None] * (1 - t) + np.array(bottom)[None, None] * t).repeat(width, axis=1)
    image = Image.fromarray(grad.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(image)
    texts = [drawn for _, drawn in plan.texts if drawn]
    n = len(plan.objects)
    area_top = int(height * (0.45 if plan.texts else 0.15))
    if n:
        cols = min(n, 3) if n > 3 else n
        rows = math.ceil(n / cols)
        cell_w, cell_h = width / cols, (height - area_top - 6) / rows
        size = min(cell_w, cell_h) * 0.8
        for k, (shape, colour, _) in enumerate(plan.objects):
            r, c = divmod(k, cols)
            cx, cy = cell_w * (c + 0.5), area_top + cell_h * (r + 0.5)
            _draw_shape(d, shape, colour, (int(cx - size / 2), int(cy - size / 2), int(cx + size / 2), int(cy + size / 2)))
    if texts:
        line_h = int(height * 0.36 / max(1, len(texts)))
        y = int(height * 0.05)
        for text in texts:
            cjk = _has_cjk(text)
            size = max(10, min(int(line_h * 0.7), int(width * 0.9 / max(1, len(text) * (1.0 if cjk else 0.62)))))
            font = _font(size, cjk=cjk)
            x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
            while x1 - x0 > width * 0.88 and size > 10:  # shrink to fit the sign
                size -= 2
                font = _font(size, cjk=cjk)
                x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
            tw, th = x1 - x0, y1 - y0
            left = (width - tw) // 2
            d.rectangle((left - 8, y - 4, left + tw + 8, y + th + 8), fill=(250, 246, 230), outline=(60, 40, 20), width=2)
            d.text((left - x0, y - y0 + 2), text, font=font, fill=(20, 20, 20))
            y += line_h
    return image


class DemoDrawPipeline(DiffusionPipeline):
    """Draws the objects, colours, counts and quoted text a prompt names, with the painter's flaws."""

    model_cpu_offload_seq = "painter"

    def __init__(self, painter: DemoPainter):
        super().__init__()
        self.register_modules(painter=painter)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], num_inference_steps: int = 1, width: int = 256, height: int = 256,
                 generator: torch.Generator | None = None, output_type: str = "pil", seed: int | None = None,
                 **_ignored: Any) -> ImagePipelineOutput:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if seed is None:  # the engine's generator is seeded with the image's seed: read it back
            seed = int(generator.initial_seed()) if generator is not None else 0
        images = []
        for text in prompts:
            plan = plan_image(prompt=text, seed=seed, flaws=self.painter.flaws)
            images.append(self.painter.finish(draw_plan(plan, width=width, height=height), generator=generator))
        if output_type == "np":
            return ImagePipelineOutput(images=np.stack([np.asarray(i, dtype=np.float32) / 255 for i in images]))
        return ImagePipelineOutput(images=images)


def save_demo_painter(*, path: Path, flaws: Flaws) -> None:
    """save_pretrained, then register the directory as a custom pipeline (hub convention)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    DemoDrawPipeline(painter=DemoPainter(**asdict(flaws))).save_pretrained(path, safe_serialization=True)
    index = json.loads((path / "model_index.json").read_text())
    index["_class_name"] = [SHIM, "DemoDrawPipeline"]
    index["painter"] = [__name__, "DemoPainter"]
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (path / f"{SHIM}.py").write_text(
        '"""evalsite demo painter: the pipeline class lives in the evalsite code base."""\n'
        f"from {__name__} import DemoDrawPipeline  # noqa: F401\n"
    )
