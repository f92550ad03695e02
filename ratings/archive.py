"""One study as a self-contained archive (its rows and images) that another installation can import.

The archive is a zip: ``manifest.json`` (format, counts, the sha256 of every image), ``records.json``
(Django's JSON serialization of every row, in dependency order) and ``media/<path>`` (the images). Import
creates new rows with new primary keys and maps every foreign key; it re-issues what must stay unique
and secret per installation (panelist invite tokens, opaque image ids, the study's share link), gives a
suite whose name is taken a suffix, reuses an image model whose slug already exists, and leaves user
references empty. Timestamps are kept.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from django.core import serializers
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction

from generation.models import Generation, ImageModel, Sweep, new_public_id
from prompts.models import Prompt, PromptSuite
from ratings.models import Assignment, Criterion, Panelist, Rating, RatingChange, Study, StudyItem, new_ref, new_token
from ratings.services.errors import StudySetupError

FORMAT = "evalsite-study-archive"
VERSION = 1
# Dependency order: every foreign key points at a model earlier in the list (or at a user: left empty).
MODELS: tuple[type[models.Model], ...] = (
    PromptSuite, Prompt, ImageModel, Sweep, Generation, Study, Criterion, Panelist, StudyItem, Assignment,
    Rating, RatingChange,
)


class ArchiveInvalid(StudySetupError):
    """The file is not a study archive this version can import (or an image in it is damaged)."""


@dataclass(frozen=True)
class ArchiveSummary:
    study_id: int
    study_name: str
    counts: dict[str, int]
    images: int


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def _study_rows(study: Study) -> dict[type[models.Model], Sequence[models.Model]]:
    sweep = study.sweep
    generations = list(Generation.objects.filter(sweep=sweep).order_by("pk"))
    assignments = list(Assignment.objects.filter(study=study).order_by("pk"))
    prompt_ids = set(Prompt.objects.filter(suite_id=sweep.suite_id).values_list("pk", flat=True))
    prompt_ids |= {a.shown_prompt_id for a in assignments} | {g.prompt_id for g in generations}
    model_ids = set(sweep.image_models.values_list("pk", flat=True))
    model_ids |= {g.model_id for g in generations} | {g.fallback_used_id for g in generations if g.fallback_used_id}
    suite_ids = set(Prompt.objects.filter(pk__in=prompt_ids).values_list("suite_id", flat=True))
    return {
        PromptSuite: list(PromptSuite.objects.filter(pk__in=suite_ids).order_by("pk")),
        Prompt: list(Prompt.objects.filter(pk__in=prompt_ids).order_by("pk")),
        # a fallback that points outside the archive is dropped on import
        ImageModel: list(ImageModel.objects.filter(pk__in=model_ids).order_by("pk")),
        Sweep: [sweep],
        Generation: generations,
        Study: [study],
        Criterion: list(Criterion.objects.filter(study=study).order_by("pk")),
        Panelist: list(Panelist.objects.filter(study=study).order_by("pk")),
        StudyItem: list(StudyItem.objects.filter(study=study).order_by("pk")),
        Assignment: assignments,
        Rating: list(Rating.objects.filter(study=study).order_by("pk")),
        RatingChange: list(RatingChange.objects.filter(rating__study=study).order_by("pk")),
    }


def study_export(*, study: Study, path: Path) -> ArchiveSummary:
    """Write ``study`` with its sweep, prompts, models, images, panelists and ratings to ``path``."""
    rows = _study_rows(study)
    # the "python" serializer + full ISO timestamps: Django's JSON encoder would cut microseconds
    records = serializers.serialize("python", [obj for model in MODELS for obj in rows[model]])
    images: dict[str, str] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for generation in cast(Sequence[Generation], rows[Generation]):  # each key's rows are of that model
            name = generation.image.name
            if not name or name in images:
                continue
            with default_storage.open(name, "rb") as handle:
                data = handle.read()
            images[name] = hashlib.sha256(data).hexdigest()
            archive.writestr(f"media/{name}", data, compress_type=zipfile.ZIP_STORED)  # PNG/WebP: compressed
        counts = {_label(model): len(rows[model]) for model in MODELS}
        manifest = {"format": FORMAT, "version": VERSION, "study": {"id": study.pk, "name": study.name},
                    "counts": counts, "images": images}
        archive.writestr("records.json", json.dumps(records, default=_encode))
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))
    return ArchiveSummary(study_id=study.pk, study_name=study.name, counts=counts, images=len(images))


def _encode(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    raise TypeError(f"cannot archive {type(value).__name__}")


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read("manifest.json"))
        records = json.loads(archive.read("records.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ArchiveInvalid(f"{path}: not a study archive ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        archive.close()
        raise ArchiveInvalid(f"{path}: format {manifest.get('format')!r} version {manifest.get('version')!r}; "
                             f"this installation reads {FORMAT!r} version {VERSION}")
    return manifest, records, archive


def _free_suite_name(name: str) -> str:
    candidate, n = name, 1
    while PromptSuite.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name} (imported {n})" if n > 2 else f"{name} (imported)"
    return candidate


def study_import(*, path: Path) -> ArchiveSummary:
    """Create the archived study in this installation (one transaction; nothing is left on failure)."""
    manifest, records, archive = _read(path)
    by_label = {_label(model): model for model in MODELS}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["model"] not in by_label:
            raise ArchiveInvalid(f"{path}: unknown row type {record['model']!r}")
        grouped[record["model"]].append(record)
    ids: dict[type[models.Model], dict[Any, Any]] = defaultdict(dict)  # model -> old pk -> new pk
    saved_files: list[str] = []
    try:
        with archive, transaction.atomic():
            for model in MODELS:
                rows = grouped[_label(model)]
                for obj in serializers.deserialize("python", rows):
                    instance, old_pk = obj.object, obj.object.pk
                    # the row's class is exactly ``model`` (none of these models subclasses another)
                    if isinstance(instance, ImageModel) and (
                            same := ImageModel.objects.filter(slug=instance.slug).first()):
                        ids[ImageModel][old_pk] = same.pk
                        continue
                    _remap(instance, ids, path)
                    if isinstance(instance, PromptSuite):
                        instance.name = _free_suite_name(instance.name)
                    if isinstance(instance, Generation):
                        instance.public_id = new_public_id()
                        if instance.image.name:
                            saved_files.append(_restore_image(instance, archive, manifest, path))
                    if isinstance(instance, Panelist):
                        instance.token = new_token()
                    if isinstance(instance, Study):
                        instance.share_token = None
                    if isinstance(instance, Assignment):
                        instance.ref = new_ref()  # opaque per installation, like tokens and image ids
                    stamps = _timestamps(instance)
                    instance.pk = None
                    instance.save(force_insert=True)
                    if stamps:  # auto_now / auto_now_add overwrote them on save: put the archived values back
                        model._default_manager.filter(pk=instance.pk).update(**stamps)
                    ids[model][old_pk] = instance.pk
                    for field_name, old_related in (obj.m2m_data or {}).items():
                        target = model._meta.get_field(field_name).related_model
                        assert isinstance(target, type)  # a many-to-many field always names its model
                        getattr(instance, field_name).set([ids[target][pk] for pk in old_related])
    except BaseException:
        for name in saved_files:
            default_storage.delete(name)
        raise
    study = Study.objects.get(pk=next(iter(ids[Study].values())))
    counts = {_label(model): len(grouped[_label(model)]) for model in MODELS}
    return ArchiveSummary(study_id=study.pk, study_name=study.name, counts=counts, images=len(saved_files))


def _remap(instance: models.Model, ids: dict[type[models.Model], dict[Any, Any]], path: Path) -> None:
    for field in instance._meta.concrete_fields:
        if not field.is_relation:
            continue
        old = getattr(instance, field.attname)
        if old is None:
            continue
        target = field.related_model
        if target not in MODELS:  # a user of the other installation
            setattr(instance, field.attname, None)
            continue
        new = ids[target].get(old)
        if new is None:
            if not field.null:
                raise ArchiveInvalid(f"{path}: {instance._meta.label} points at a missing {target._meta.label} {old}")
            setattr(instance, field.attname, None)
        else:
            setattr(instance, field.attname, new)


def _restore_image(generation: Generation, archive: zipfile.ZipFile, manifest: dict[str, Any], path: Path) -> str:
    name = generation.image.name or ""  # the caller only passes a generation with an image
    try:
        data = archive.read(f"media/{name}")
    except KeyError as exc:
        raise ArchiveInvalid(f"{path}: image {name} is missing") from exc
    if hashlib.sha256(data).hexdigest() != manifest["images"].get(name):
        raise ArchiveInvalid(f"{path}: image {name} does not match its checksum")
    generation.image.save(Path(name).name, ContentFile(data), save=False)
    saved = generation.image.name
    assert saved is not None  # FieldFile.save has just stored the file under this name
    return saved


def _timestamps(instance: models.Model) -> dict[str, Any]:
    return {f.name: getattr(instance, f.attname) for f in instance._meta.concrete_fields
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
