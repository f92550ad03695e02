"""VRAM profiles: which card classes a model renders on, with which setting, how fast (issue 14).

A profile is asked for from the model's page (a task on the ``gpu`` queue) or run in-process by
``profile_vram`` on a GPU host; both end in ``vram_profile_run``, which builds the model's spec as
the renderer does (``image_model_spec``), profiles it with ``generation.engine.profile`` on an
Engine without the offload retry, and stores the report. The engine's profile module needs no
torch to import (its names and card classes are checked here in the web process); the Engine
itself is imported only when a profile runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from evalsite.errors import ServiceError
from generation.engine import profile as card_profile
from generation.engine.profile import CARD_CLASSES_GB, CONTEXT_GIB, SETTING_NAMES, NoGPU, card_cap_bytes
from generation.models import Backend, ImageModel, VramProfile, VramProfileStatus
from generation.signals import vram_profile_done

from .liveness import worker_liveness
from .rendering import engine_models_release, image_model_spec, worker_memory_cap_bytes, worker_name

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from generation.engine import Engine

logger = logging.getLogger(__name__)

MAX_CARD_GB = 512  # above any single GPU sold (288 GB in 2026): a typo (800 for 80), refused


class VramProfileInvalid(ServiceError):
    """A profile can't be asked for as given (unknown card, setting or an imported model)."""


def vram_cards_parse(*, text: str) -> list[float]:
    """'8,12,16' -> [8, 12, 16]: card classes in GB, sorted, without repeats; a bad entry is refused by name."""
    cards: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise VramProfileInvalid(f"card {part!r} is not a number of GB (e.g. 8,12,16,24,48,80)") from None
        cards.append(value)
    if not cards:
        raise VramProfileInvalid("no card given (e.g. 8,12,16,24,48,80)")
    return vram_cards_check(cards=cards)


def vram_cards_check(*, cards: Sequence[float]) -> list[float]:
    out = []
    for card in cards:
        if not (card == card) or card <= CONTEXT_GIB + 0.25 or card > MAX_CARD_GB:  # NaN, no room, or a typo
            raise VramProfileInvalid(f"card {card:g} GB is not a card class: give GB between 1 and {MAX_CARD_GB}")
        out.append(int(card) if float(card).is_integer() else float(card))
    return sorted(set(out))


def vram_settings_check(*, names: Sequence[str]) -> list[str]:
    """Setting names as generation.engine.profile knows them (empty = all), in its order."""
    unknown = [n for n in names if n not in SETTING_NAMES]
    if unknown:
        raise VramProfileInvalid(f"unknown setting(s) {', '.join(map(repr, unknown))} "
                                 f"(known: {', '.join(SETTING_NAMES)})")
    return [n for n in SETTING_NAMES if n in names]


def vram_profile_create(*, image_model: ImageModel, cards: Sequence[float] = CARD_CLASSES_GB,
                        setting_names: Sequence[str] = (), verify: bool = True,
                        requested_by: User | None = None) -> VramProfile:
    """The queued row of a profile (checked: card classes, setting names, a model a worker renders)."""
    if image_model.backend == Backend.IMPORTED:
        raise VramProfileInvalid(f"{image_model.name} is imported (its images were made elsewhere): "
                                 "no worker renders it, so there is nothing to profile")
    return VramProfile.objects.create(
        image_model=image_model, cards=vram_cards_check(cards=cards),
        setting_names=vram_settings_check(names=setting_names), verify=verify,
        requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
    )


def vram_profile_request(*, image_model: ImageModel, cards: Sequence[float] = CARD_CLASSES_GB,
                         requested_by: User | None = None, setting_names: Sequence[str] = (),
                         verify: bool = True) -> VramProfile:
    """Queue a profile for a GPU worker (the task is sent after commit, on the ``gpu`` queue)."""
    # Not at the top: generation.tasks imports the services (a task only calls a service).
    from generation.tasks import vram_profile

    with transaction.atomic():
        profile = vram_profile_create(image_model=image_model, cards=cards, setting_names=setting_names,
                                      verify=verify, requested_by=requested_by)
        pk = profile.pk
        transaction.on_commit(lambda: vram_profile.apply_async(kwargs={"profile_id": pk}))
    logger.info("VRAM profile %s of %s queued (cards %s)", pk, image_model.slug, profile.cards)
    return profile


def _claim(*, profile_id: int, worker: str) -> bool:
    """Queued -> running for this process. A redelivered task (late acks) finds it taken and does nothing."""
    now = timezone.now()
    return bool(VramProfile.objects.filter(pk=profile_id, status=VramProfileStatus.QUEUED).update(
        status=VramProfileStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker))


@contextmanager
def _heartbeat(*, profile_id: int, interval: float | None = None) -> Iterator[None]:
    """While the block runs, a thread refreshes the running profile's heartbeat every ``interval`` seconds
    (RENDER_HEARTBEAT_SECONDS): a model load or a capped render may take minutes without a step to report,
    and the process that runs it (a worker's task or the ``profile_vram`` command) is alive all that time."""
    stop = threading.Event()
    every = settings.RENDER_HEARTBEAT_SECONDS if interval is None else interval

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    VramProfile.objects.filter(pk=profile_id, status=VramProfileStatus.RUNNING).update(
                        heartbeat_at=timezone.now())
                except DatabaseError:  # a database hiccup: the next beat tries again
                    logger.warning("VRAM profile %s: heartbeat failed", profile_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"vram-profile-{profile_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _finish(*, profile_id: int, status: str, report: dict[str, Any] | None = None, error: str = "",
            gpu_name: str = "") -> None:
    fields: dict[str, Any] = {"status": status, "error": error[:4000], "finished_at": timezone.now()}
    if report is not None:
        fields["report"] = report
    if gpu_name:
        fields["gpu_name"] = gpu_name
    VramProfile.objects.filter(pk=profile_id).update(**fields)


def vram_profile_run(*, profile_id: int, engine: Engine | None = None,
                     on_result: Callable[[dict[str, Any]], None] | None = None) -> VramProfile | None:
    """Run a queued profile here: the model's spec, an Engine(oom_retry=False), profile(), the report stored.

    Idempotent (only a queued row is run). On a CPU the profile fails with NoGPU's message. Card
    classes above this worker's EVALSITE_GPU_MEMORY_GIB are not profiled (the cap is a ceiling: a
    card above it would be measured under the ceiling, not under its own size); the report says so.
    ``on_result`` sees the report after each step (the command prints progress from it).
    """
    profile = VramProfile.objects.select_related("image_model").filter(pk=profile_id).first()
    if profile is None or not _claim(profile_id=profile_id, worker=worker_name()):
        return profile
    spec = image_model_spec(model=profile.image_model)
    ceiling = worker_memory_cap_bytes()
    cards = [c for c in profile.cards if ceiling is None or card_cap_bytes(c) <= ceiling]
    skipped = [c for c in profile.cards if c not in cards]
    own_engine = engine is None
    worker_liveness.chunk_received()  # busy: chunks queued behind the profile are not "lost" meanwhile
    with _heartbeat(profile_id=profile_id):  # the process lives: the reconcile leaves it running
        try:
            if own_engine:
                engine_models_release()  # the worker's cached models leave the card to the profile
                # torch: only a worker running a profile loads it (the web process imports this module).
                from generation.engine import Engine

                engine = Engine(memory_cap_bytes=ceiling, memory_ceiling_bytes=ceiling, oom_retry=False)

            def progress(report: dict[str, Any]) -> None:
                VramProfile.objects.filter(pk=profile_id).update(report=report, gpu_name=report.get("gpu_name", ""))
                if on_result:
                    on_result(report)

            if not cards:
                raise VramProfileInvalid(
                    f"every card asked for ({', '.join(f'{c:g}' for c in profile.cards)} GB) is above this worker's "
                    f"EVALSITE_GPU_MEMORY_GIB ceiling: profile them on a worker without that cap")
            report = card_profile.profile(engine, spec, cards=cards,
                                          settings=profile.setting_names or card_profile.SETTING_NAMES,
                                          verify=profile.verify, on_result=progress)
            if skipped:
                report["cards_skipped"] = {"cards": skipped, "why": "above this worker's EVALSITE_GPU_MEMORY_GIB ceiling"}
            _finish(profile_id=profile_id, status=VramProfileStatus.DONE, report=report, gpu_name=report["gpu_name"])
            transaction.on_commit(lambda: vram_profile_done.send(sender=VramProfile, image_model_id=profile.image_model_id))
            logger.info("VRAM profile %s of %s done: min card %s", profile_id, spec.slug, report.get("min_card"))
        except (NoGPU, VramProfileInvalid) as exc:
            _finish(profile_id=profile_id, status=VramProfileStatus.FAILED, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - the row says why; the worker lives on (a redelivery finds it failed)
            logger.exception("VRAM profile %s of %s crashed", profile_id, spec.slug)
            _finish(profile_id=profile_id, status=VramProfileStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        finally:
            if own_engine and engine is not None:
                engine.close()
            worker_liveness.chunk_end()
    return VramProfile.objects.get(pk=profile_id)
