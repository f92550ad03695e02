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
import struct
import zlib
from typing import Any

from PIL import Image, ImageOps

NEUTRAL = (128, 128, 128)
FORMATS = ("png", "jpeg", "webp")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# Fixed encoder settings; never derived from the input image.
_ENCODER: dict[str, dict[str, Any]] = {
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


# --- serving: one byte size per canvas and format -----------------------------------------------
#
# Byte size is a side channel: how well an image compresses tells smooth photoreal models from
# detailed ones (a size-only nearest-neighbour guess named the model 94-100% of the time). What a
# panelist receives is therefore padded to a budget that depends only on the canvas and the format,
# with one chunk layout: a PNG is rewritten as IHDR, one IDAT, one padding chunk, IEND; a JPEG or
# WebP gets zero bytes after its end (EOI / the RIFF size), which decoders ignore.

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_PAD_CHUNK = b"paDd"  # ancillary, private, safe to copy: decoders skip it
LOSSY_BYTES_PER_PIXEL = 1.5  # above JPEG/WebP q95 of pure noise (1.2-1.3 measured); photos use 0.2-0.6
PNG_FIXED = 8 + 25 + 12 + 12 + 12  # signature, IHDR, IDAT/padding/IEND chunk overheads


def _zlib_bound(n: int) -> int:
    """zlib's compressBound: the most deflate can produce from n bytes (stored blocks included)."""
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13


def serving_budget(*, fmt: str, width: int, height: int) -> int:
    """The Content-Length every served image of this canvas and format gets (unless one exceeds it)."""
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt == "png":
        return PNG_FIXED + _zlib_bound(height * (1 + 3 * width)) + 64
    return int(width * height * LOSSY_BYTES_PER_PIXEL) + 16 * 1024


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_parts(data: bytes) -> tuple[bytes, bytes]:
    """(IHDR data, all IDAT data joined) of a PNG; every other chunk is dropped."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, ihdr, idat = 8, None, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None or not idat:
        raise ValueError("PNG without IHDR or IDAT")
    return ihdr, b"".join(idat)


def pad_for_serving(data: bytes, *, fmt: str, width: int, height: int) -> bytes:
    """The stored image as served: one size per (canvas, format), one chunk layout; pixels untouched.

    An image larger than the budget (never seen with real renders) is padded to the next multiple
    of it, so sizes still fall in a few coarse classes rather than telling images apart.
    """
    fmt = "jpeg" if fmt == "jpg" else fmt
    budget = serving_budget(fmt=fmt, width=width, height=height)
    if data.startswith(PNG_SIGNATURE):  # by the bytes: a file that is not what its sweep says still pads
        ihdr, idat = _png_parts(data)
        core = PNG_FIXED + len(idat)
        target = budget * max(1, -(-core // budget))
        return b"".join((PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr), _png_chunk(b"IDAT", idat),
                         _png_chunk(PNG_PAD_CHUNK, bytes(target - core)), _png_chunk(b"IEND", b"")))
    if data[:4] == b"RIFF":
        data = data[:8 + struct.unpack("<I", data[4:8])[0]]  # the RIFF container only
    target = budget * max(1, -(-len(data) // budget))
    return data + bytes(target - len(data))
