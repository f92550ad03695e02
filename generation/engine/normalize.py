"""Re-encode every image the same way, so nothing but the pixels can tell models apart.

Policy (blindness is a security property, DESIGN.md):
- RGB, 8 bits; an alpha channel is flattened onto NEUTRAL (mid grey).
- One canvas size per sweep. Models may render at other sizes or aspect ratios; the image
  is scaled to *cover* the canvas (Lanczos) and centre-cropped. We chose cover over
  fit-and-pad because letterbox bars would reveal a model's native aspect ratio.
- No metadata at all: the pixels are copied into a fresh image (no EXIF, ICC profile, PNG
  text chunks, DPI or gamma), and the encoder is called with fixed settings.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

NEUTRAL = (128, 128, 128)
FORMATS = ("png", "jpeg", "webp")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# Fixed encoder settings; never derived from the input image.
_ENCODER = {
    "png": {"format": "PNG", "optimize": False, "compress_level": 6},
    "jpeg": {"format": "JPEG", "quality": 95, "subsampling": 2, "optimize": False, "progressive": False},
    "webp": {"format": "WEBP", "quality": 95, "method": 4, "lossless": False, "exact": False},
}


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, NEUTRAL)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def normalize_image(image: Image.Image, *, width: int, height: int, fmt: str) -> bytes:
    """The image as `fmt` bytes of exactly width×height, RGB, with no metadata."""
    fmt = fmt.lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in FORMATS:
        raise ValueError(f"image format must be one of {FORMATS}, not {fmt!r}")
    if width < 1 or height < 1:
        raise ValueError(f"canvas size must be positive, not {width}x{height}")
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    rgb = _rgb(image)
    if rgb.size != (width, height):
        rgb = ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())  # a fresh image: no info, no EXIF, no ICC
    buffer = io.BytesIO()
    clean.save(buffer, **_ENCODER[fmt])
    return buffer.getvalue()
