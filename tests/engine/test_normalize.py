"""normalize_image: one canvas, RGB, fixed encoder, no metadata, whatever the model produced."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from generation.engine import normalize_image


def _noisy(size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8), mode=mode)


def _with_metadata(image):
    """An image carrying everything a model or library might leave in a file."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "model: flux-dev, steps 28, seed 42")
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0131] = "diffusers 0.42.1"  # Software
    image.save(buffer, format="PNG", pnginfo=info, exif=exif, dpi=(300, 300))
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("fmt,pil_format", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_every_model_comes_out_the_same_shape_and_format(fmt, pil_format):
    natives = [_noisy((1024, 1024)), _noisy((512, 512), seed=1), _noisy((832, 1216), seed=2), _noisy((48, 48), seed=3)]
    for native in natives:
        data = normalize_image(_with_metadata(native), width=256, height=256, fmt=fmt)
        out = Image.open(io.BytesIO(data))
        assert (out.format, out.size, out.mode) == (pil_format, (256, 256), "RGB")
        assert "exif" not in out.info and "parameters" not in out.info and "dpi" not in out.info
        assert "icc_profile" not in out.info
        assert b"flux-dev" not in data and b"diffusers" not in data


def test_png_has_no_ancillary_chunks_at_all():
    data = normalize_image(_with_metadata(_noisy((64, 64))), width=64, height=64, fmt="png")
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8].decode())
        pos += 12 + length
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}


def test_encoding_is_deterministic_and_keeps_pixels_at_native_size():
    image = _noisy((64, 64))
    a = normalize_image(image, width=64, height=64, fmt="png")
    assert a == normalize_image(image.copy(), width=64, height=64, fmt="png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(a))), np.asarray(image))  # lossless, no resample


def test_other_aspect_ratios_cover_the_canvas_without_bars():
    wide = Image.new("RGB", (400, 100), (200, 20, 20))
    out = Image.open(io.BytesIO(normalize_image(wide, width=100, height=100, fmt="png")))
    assert out.size == (100, 100)
    assert out.getpixel((0, 0)) == out.getpixel((99, 99)) == (200, 20, 20)  # no letterbox reveals the aspect


def test_alpha_is_flattened_onto_neutral_grey():
    clear = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    out = Image.open(io.BytesIO(normalize_image(clear, width=32, height=32, fmt="png")))
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (128, 128, 128)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="image format"):
        normalize_image(_noisy((8, 8)), width=8, height=8, fmt="gif")
    with pytest.raises(ValueError, match="canvas size"):
        normalize_image(_noisy((8, 8)), width=0, height=8, fmt="png")
    with pytest.raises(TypeError):
        normalize_image(b"not an image", width=8, height=8, fmt="png")
