"""Bring your own images: a model's outputs made elsewhere (an API, a closed model) join a sweep.

Input is a bundle of files (a folder, a zip, or the files of an upload) with a CSV manifest
(``prompt, file[, seed, seconds, cost]``) or, without one, image files named by prompt number
(``12.png``). Everything is checked first and every problem is reported with its line; only a clean
bundle is imported, all at once. Each image goes through the same normalisation as rendered ones (the
sweep's canvas and format, metadata stripped) and is stored under an opaque id, so panelists can't
tell imported images from rendered ones. Figures from the manifest are kept as *supplied*.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, UnidentifiedImageError

from evalsite.errors import ServiceError
from generation.engine.normalize import EXTENSIONS, normalize_image
from generation.engine.ocr import text_check
from generation.models import Backend, Generation, GenerationStatus, ImageModel, Origin, Sweep
from generation.signals import sweep_images_added
from prompts.models import Prompt

from .rendering import generation_ocr_fields
from .thumbnails import generation_thumbnail

logger = logging.getLogger(__name__)

MANIFEST_NAMES = ("manifest.csv",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MANIFEST_COLUMNS = ("prompt", "file", "seed", "seconds", "cost")


class ImageImportError(ServiceError):
    """The bundle was refused; ``problems`` holds one line per problem (``WHERE:LINE: message``)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems), messages=problems)


@dataclass
class Bundle:
    """Files by their relative name (posix), each read on demand; plus the manifest text, if any."""

    label: str
    files: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    manifest_name: str = ""
    manifest_text: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class _Row:
    line: int
    prompt: Prompt
    seed: int
    file: str
    seconds: float | None
    cost: float | None


def _unsafe_member(name: str) -> str:
    """Why a zip member name can't be used ('' when it is safe)."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        return "climbs out of the archive (../)"
    return ""


def bundle_from_zip(*, file: IO[bytes] | Path, label: str) -> Bundle:
    """A zip's members as a bundle (never extracted to disk). Unsafe names and sizes are problems."""
    bundle = Bundle(label=label)
    limit = settings.IMAGE_IMPORT_MAX_BYTES
    size = file.stat().st_size if isinstance(file, Path) else _stream_size(file)
    if size > limit:
        bundle.problems.append(f"{label}: the zip is {size:,} bytes, over the limit of {limit:,} bytes")
        return bundle
    try:
        archive = zipfile.ZipFile(file)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        bundle.problems.append(f"{label}: not a readable zip file ({exc})")
        return bundle
    unpacked = 0
    for info in members:
        why = _unsafe_member(info.filename)
        if why:
            bundle.problems.append(f"{label}: entry {info.filename!r} {why}")
            continue
        if info.is_dir() or PurePosixPath(info.filename).name.startswith(".") or "__MACOSX" in info.filename:
            continue
        unpacked += info.file_size
        bundle.files[info.filename.replace("\\", "/")] = functools.partial(archive.read, info)
    if unpacked > settings.IMAGE_IMPORT_MAX_UNPACKED_BYTES:
        bundle.problems.append(f"{label}: the zip unpacks to {unpacked:,} bytes, over the limit of "
                               f"{settings.IMAGE_IMPORT_MAX_UNPACKED_BYTES:,} bytes")
    _take_manifest(bundle)
    return bundle


def _stream_size(file: IO[bytes]) -> int:
    size = getattr(file, "size", None)
    if size is None:
        position = file.tell()
        file.seek(0, io.SEEK_END)
        size = file.tell()
        file.seek(position)
    return int(size)


def bundle_from_directory(*, path: Path) -> Bundle:
    """A folder's files (recursively, symlinks leaving it refused) as a bundle."""
    bundle = Bundle(label=str(path))
    root = path.resolve()
    total = 0
    for item in sorted(path.rglob("*")):
        if not item.is_file() or item.name.startswith("."):
            continue
        if not item.resolve().is_relative_to(root):
            bundle.problems.append(f"{path}: {item.relative_to(path)} links outside the folder")
            continue
        total += item.stat().st_size
        bundle.files[item.relative_to(path).as_posix()] = item.read_bytes
    if total > settings.IMAGE_IMPORT_MAX_UNPACKED_BYTES:
        bundle.problems.append(f"{path}: the folder holds {total:,} bytes, over the limit of "
                               f"{settings.IMAGE_IMPORT_MAX_UNPACKED_BYTES:,} bytes")
    _take_manifest(bundle)
    return bundle


def bundle_from_path(*, path: Path) -> Bundle:
    """A folder or a .zip file on disk."""
    if path.is_dir():
        return bundle_from_directory(path=path)
    if path.is_file():
        return bundle_from_zip(file=path, label=str(path))
    return Bundle(label=str(path), problems=[f"{path}: no such folder or zip file"])


def _reader(upload: IO[bytes]) -> Callable[[], bytes]:
    """The whole of an uploaded file, read again from its start at each call."""
    def read() -> bytes:
        upload.seek(0)
        return upload.read()
    return read


def bundle_from_uploads(*, files: list[Any], label: str = "upload") -> Bundle:
    """The files of an upload form: one zip, or the images of a folder (and maybe its manifest)."""
    if len(files) == 1 and files[0].name.lower().endswith(".zip"):
        return bundle_from_zip(file=files[0], label=files[0].name)
    bundle = Bundle(label=label)
    total = sum(f.size for f in files)
    if total > settings.IMAGE_IMPORT_MAX_BYTES:
        bundle.problems.append(f"{label}: {total:,} bytes uploaded, over the limit of "
                               f"{settings.IMAGE_IMPORT_MAX_BYTES:,} bytes")
        return bundle
    for f in files:
        name = f.name.replace("\\", "/")
        why = _unsafe_member(name)
        if why:
            bundle.problems.append(f"{label}: file {name!r} {why}")
            continue
        bundle.files[name] = _reader(f)
    _take_manifest(bundle)
    return bundle


def bundle_set_manifest(*, bundle: Bundle, name: str, data: bytes) -> None:
    """A manifest given apart from the images (it replaces one inside the bundle)."""
    bundle.manifest_name = name
    try:
        bundle.manifest_text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        bundle.problems.append(f"{name}: the manifest is not UTF-8 text")
        bundle.manifest_text = None


def _take_manifest(bundle: Bundle) -> None:
    for name in list(bundle.files):
        if PurePosixPath(name).name.lower() in MANIFEST_NAMES and name.count("/") <= 1:
            bundle_set_manifest(bundle=bundle, name=name, data=bundle.files.pop(name)())
            return


def _prompt_lookup(*, sweep: Sweep) -> tuple[dict[str, Prompt], set[int]]:
    """Prompts of the sweep's suite by number (position) and by exact text; and the ids the sweep renders."""
    prompts = list(sweep.suite.prompts.all())
    lookup: dict[str, Prompt] = {}
    for p in prompts:
        lookup[str(p.position)] = p
        lookup[p.text.strip()] = p
    in_sweep = set(Generation.objects.filter(sweep=sweep).order_by().values_list("prompt_id", flat=True).distinct())
    return lookup, in_sweep or {p.pk for p in prompts}


def _resolve_prompt(key: str, lookup: dict[str, Prompt]) -> Prompt | None:
    key = key.strip()
    if key.isdigit():
        return lookup.get(str(int(key)))
    return lookup.get(key)


def _number(value: str, *, what: str, where: str, problems: list[str]) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append(f"{where}: {what} {value!r} is not a number")
        return None
    if not number >= 0 or number == float("inf"):
        problems.append(f"{where}: {what} {value!r} must be a finite number ≥ 0")
        return None
    return number


def _manifest_rows(*, bundle: Bundle, sweep: Sweep, lookup: dict[str, Prompt], in_sweep: set[int],
                   problems: list[str]) -> list[_Row]:
    rows: list[_Row] = []
    name = bundle.manifest_name
    reader = csv.DictReader(io.StringIO(bundle.manifest_text or ""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("prompt", "file") if c not in header]
    if missing:
        problems.append(f"{name}:1: the manifest needs the columns prompt and file (missing: {', '.join(missing)}); "
                        f"optional: seed, seconds, cost")
        return rows
    unknown_cols = [h for h in header if h not in MANIFEST_COLUMNS]
    if unknown_cols:
        problems.append(f"{name}:1: unknown column(s) {', '.join(unknown_cols)} (known: {', '.join(MANIFEST_COLUMNS)})")
    reader.fieldnames = header
    basenames: dict[str, list[str]] = {}
    for file_name in bundle.files:
        basenames.setdefault(PurePosixPath(file_name).name, []).append(file_name)
    for record in reader:
        line = reader.line_num
        where = f"{name}:{line}"
        if not any((v or "").strip() for k, v in record.items() if k):
            continue
        prompt = _resolve_prompt(record.get("prompt") or "", lookup)
        file_name = (record.get("file") or "").strip().replace("\\", "/").removeprefix("./")
        ok = True
        if prompt is None:
            problems.append(f"{where}: unknown prompt {record.get('prompt')!r} (give its number or exact text in "
                            f"suite {sweep.suite.name!r})")
            ok = False
        elif prompt.pk not in in_sweep:
            problems.append(f"{where}: prompt {prompt.position} is not part of this sweep")
            ok = False
        if not file_name:
            problems.append(f"{where}: no file named")
            ok = False
        elif file_name not in bundle.files:
            candidates = basenames.get(PurePosixPath(file_name).name, [])
            if len(candidates) == 1 and "/" not in file_name:
                file_name = candidates[0]
            else:
                problems.append(f"{where}: file {file_name!r} is not in {bundle.label}")
                ok = False
        seed = _seed(record.get("seed") or "", sweep=sweep, where=where, problems=problems)
        seconds = _number(record.get("seconds") or "", what="seconds", where=where, problems=problems)
        cost = _number(record.get("cost") or "", what="cost", where=where, problems=problems)
        if ok and prompt is not None and seed is not None:  # ok is False without a prompt
            rows.append(_Row(line=line, prompt=prompt, seed=seed, file=file_name, seconds=seconds, cost=cost))
    return rows


def _seed(value: str, *, sweep: Sweep, where: str, problems: list[str]) -> int | None:
    value = value.strip()
    if not value:
        return int(sweep.seeds[0]) if sweep.seeds else 0
    try:
        seed = int(value)
    except ValueError:
        problems.append(f"{where}: seed {value!r} is not an integer")
        return None
    if seed not in sweep.seeds:
        problems.append(f"{where}: seed {seed} is not one of this sweep's seeds ({', '.join(map(str, sweep.seeds))}); "
                        f"images are compared per prompt and seed")
        return None
    return seed


def _named_rows(*, bundle: Bundle, sweep: Sweep, lookup: dict[str, Prompt], in_sweep: set[int],
                problems: list[str]) -> list[_Row]:
    """No manifest: image files named by prompt number (12.png), one per prompt, the sweep's first seed."""
    rows = []
    for line, file_name in enumerate(sorted(bundle.files), start=1):
        path = PurePosixPath(file_name)
        where = f"{bundle.label}: {file_name}"
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{where}: not an image file name (expected <prompt number>{IMAGE_SUFFIXES[0]} "
                            f"or a manifest.csv)")
            continue
        prompt = _resolve_prompt(path.stem, lookup) if path.stem.isdigit() else None
        if prompt is None:
            problems.append(f"{where}: the name is not a prompt number of suite {sweep.suite.name!r}")
            continue
        if prompt.pk not in in_sweep:
            problems.append(f"{where}: prompt {prompt.position} is not part of this sweep")
            continue
        rows.append(_Row(line=line, prompt=prompt, seed=int(sweep.seeds[0]) if sweep.seeds else 0, file=file_name,
                         seconds=None, cost=None))
    return rows


def _where(bundle: Bundle, row: _Row) -> str:
    return f"{bundle.manifest_name}:{row.line}" if bundle.manifest_text is not None else f"{bundle.label}: {row.file}"


def _decode(data: bytes, *, where: str, problems: list[str]):
    """The image, fully decoded, or None with the reason in problems (not an image, a bomb, truncated)."""
    limit = settings.IMAGE_IMPORT_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limit:
                problems.append(f"{where}: {width}×{height} pixels is over the limit of {limit:,} "
                                f"(a decompression bomb?)")
                return None
            image.load()
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        problems.append(f"{where}: refused as a decompression bomb ({exc})")
    except UnidentifiedImageError:
        problems.append(f"{where}: not an image")
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt files name their cause
        problems.append(f"{where}: unreadable image ({type(exc).__name__}: {exc})")
    return None


def sweep_for_import(*, name: str) -> Sweep:
    """The sweep of that name (or id); ImageImportError when there is none or several."""
    found = list(Sweep.objects.filter(name=name.strip()).order_by("-created_at")[:5])
    if not found and name.strip().isdigit():
        found = list(Sweep.objects.filter(pk=int(name.strip())))
    if not found:
        known = ", ".join(repr(s.name) for s in Sweep.objects.order_by("-created_at")[:10]) or "none"
        raise ImageImportError([f"no sweep named {name!r} (recent: {known})"])
    if len(found) > 1:
        raise ImageImportError([f"{len(found)} sweeps are named {name!r}: give the id instead "
                                f"({', '.join(str(s.pk) for s in found)})"])
    return found[0]


def image_model_for_import(*, name: str) -> ImageModel | None:
    """The registered model of that name or slug (case-insensitive), if any."""
    name = name.strip()
    return ImageModel.objects.filter(Q(name__iexact=name) | Q(slug__iexact=name)).order_by("pk").first()


def image_model_create_imported(*, name: str, width: int, height: int, note: str) -> ImageModel:
    """A new model marked imported (backend=imported): no worker renders it (also used by import_ratings)."""
    base = slugify(name)[:70] or "imported"
    slug, n = base, 1
    while ImageModel.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return ImageModel.objects.create(
        slug=slug, name=name.strip()[:200], backend=Backend.IMPORTED, source="imported", width=width, height=height,
        notes=note,
    )


def sweep_images_import(*, sweep: Sweep, model_name: str, bundle: Bundle, created_by=None) -> dict[str, Any]:
    """Check the whole bundle, then import it at once; raise ImageImportError listing every problem.

    Returns {"model": ImageModel, "images": n, "created_model": bool}.
    """
    problems = list(bundle.problems)
    if not model_name.strip():
        problems.append("give the model's name (--model)")
    model = image_model_for_import(name=model_name) if model_name.strip() else None
    if model is not None and Generation.objects.filter(sweep=sweep, model=model).exists():
        problems.append(f"model {model.name!r} already has images in sweep {sweep}: import under another name, "
                        f"or into another sweep")
    lookup, in_sweep = _prompt_lookup(sweep=sweep)
    if bundle.manifest_text is not None:
        rows = _manifest_rows(bundle=bundle, sweep=sweep, lookup=lookup, in_sweep=in_sweep, problems=problems)
    else:
        rows = _named_rows(bundle=bundle, sweep=sweep, lookup=lookup, in_sweep=in_sweep, problems=problems)
    seen: dict[tuple[int, int], _Row] = {}
    for row in rows:
        key = (row.prompt.pk, row.seed)
        if key in seen:
            problems.append(f"{_where(bundle, row)}: prompt {row.prompt.position} (seed {row.seed}) appears twice for "
                            f"this model; first at {_where(bundle, seen[key])}")
        else:
            seen[key] = row
    if not rows and not problems:
        problems.append(f"{bundle.label}: no images to import")
    native: dict[int, tuple[int, int, str]] = {}
    for row in rows:
        data = bundle.files[row.file]()
        image = _decode(data, where=f"{_where(bundle, row)} ({row.file})", problems=problems)
        if image is not None:
            native[row.line] = (image.width, image.height, hashlib.sha256(data).hexdigest())
            image.close()
    if problems:
        raise ImageImportError(problems)
    return _write(sweep=sweep, model=model, model_name=model_name, bundle=bundle, rows=rows, native=native,
                  normalize=normalize_image)


_new_imported_model = image_model_create_imported  # the name ratings.services.imports first used


def _write(*, sweep, model, model_name, bundle, rows, native, normalize) -> dict[str, Any]:
    saved: list[str] = []
    storage = Generation._meta.get_field("image").storage
    created_model = model is None
    now = timezone.now()
    canvas = {"width": sweep.canvas_width, "height": sweep.canvas_height, "format": sweep.image_format}
    try:
        with transaction.atomic():
            if model is None:
                first = native[rows[0].line]
                model = image_model_create_imported(name=model_name, width=first[0], height=first[1],
                                            note=f"imported from {bundle.label}")
            sweep.image_models.add(model)
            for row in rows:
                with Image.open(io.BytesIO(bundle.files[row.file]())) as image:
                    data = normalize(image, width=sweep.canvas_width, height=sweep.canvas_height,
                                     fmt=sweep.image_format)
                width, height, sha = native[row.line]
                generation = Generation(
                    sweep=sweep, prompt=row.prompt, model=model, seed=row.seed, status=GenerationStatus.DONE,
                    origin=Origin.IMPORTED, seconds=row.seconds, cost=row.cost, native_width=width,
                    native_height=height, width=sweep.canvas_width, height=sweep.canvas_height, started_at=now,
                    finished_at=now,
                    settings_snapshot={"import": {"file": row.file, "source": bundle.label, "line": row.line,
                                                  "manifest": bundle.manifest_name, "sha256": sha,
                                                  "seconds_supplied": row.seconds is not None,
                                                  "cost_supplied": row.cost is not None},
                                       "canvas": canvas},
                )
                ext = EXTENSIONS[sweep.image_format]
                generation.image.save(f"image.{ext}", ContentFile(data), save=False)
                saved.append(generation.image.name or "")
                _ocr(generation=generation, data=data)
                generation.save()
                saved.append(generation_thumbnail(generation=generation) or "")
    except IntegrityError as exc:
        _delete(storage, saved)
        raise ImageImportError([f"{bundle.label}: these images clash with ones already in the sweep ({exc})"]) from exc
    except BaseException:
        _delete(storage, saved)
        raise
    logger.info("imported %d images of %s into sweep %s", len(rows), model.slug, sweep.pk)
    sweep_images_added.send(sender=Sweep, sweep_id=sweep.pk)
    return {"model": model, "images": len(rows), "created_model": created_model}


def _ocr(*, generation: Generation, data: bytes) -> None:
    """The same OCR text check rendered text-prompt images get (on the normalised image)."""
    prompt = generation.prompt
    if not prompt.expected_text:
        return

    check = text_check(Image.open(io.BytesIO(data)), expected=prompt.expected_text, language=prompt.language)
    for name, value in generation_ocr_fields(check=check).items():
        setattr(generation, name, value)


def _delete(storage, names: list[str]) -> None:
    for name in names:
        if name:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not remove %s after a failed import", name)


__all__ = [
    "Bundle", "ImageImportError", "bundle_from_directory", "bundle_from_path", "bundle_from_uploads",
    "bundle_from_zip", "bundle_set_manifest", "image_model_create_imported", "image_model_for_import", "sweep_for_import", "sweep_images_import",
]
