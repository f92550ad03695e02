"""Gallery thumbnails: made once per image and kept in the media storage (never per request).

Staff-only files (panelists only ever get the full normalised image through the blind view), named
after the image's opaque id.
"""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from PIL import Image

from generation.models import Generation

THUMBNAIL_SIZE = 256


def thumbnail_name(*, generation: Generation) -> str:
    return f"t/{generation.public_id[:2]}/{generation.public_id}.jpg"


def generation_thumbnail(*, generation: Generation) -> str | None:
    """The storage name of the image's thumbnail, made now if it is not there yet (None: no image)."""
    source = generation.image.name
    if not source:
        return None
    storage = generation.image.storage
    name = thumbnail_name(generation=generation)
    if storage.exists(name):
        return name
    if not storage.exists(source):
        return None  # the row names a file the storage lost: nothing to show

    with generation.image.open("rb") as handle:
        opened = Image.open(handle)
        opened.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        image = opened.convert("RGB")
        image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return storage.save(name, ContentFile(buffer.getvalue()))
