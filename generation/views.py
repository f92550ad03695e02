"""Staff pages: start a sweep (with a live preview), watch and cancel it, look at its images, import images.

Every view here is staff only (never reachable with a panelist's invite token: panelists have no
account). Images are served to staff by their opaque id through these views, never from /media/.
"""

from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from evalsite.access import PERM_MANAGE_STUDY, PERM_RUN_SWEEP, staff_permission_required, user_may
from generation import selectors
from generation.engine.normalize import CONTENT_TYPES
from generation.engine.profile import CARD_CLASSES_GB
from generation.forms import ImageImportForm, SweepForm
from generation.models import Backend, Generation, ImageModel, Sweep, SweepStatus, VramProfileStatus
from generation.services import (
    SweepInvalid,
    sweep_cancel,
    sweep_canvas_default,
    sweep_create,
    sweep_prompts_select,
    sweep_retry_failed,
)
from generation.services.imports import ImageImportError, bundle_from_uploads, bundle_set_manifest, sweep_images_import
from generation.services.thumbnails import generation_thumbnail
from generation.services.vram import VramProfileInvalid, vram_cards_parse, vram_profile_request
from generation.services.workers import worker_reports_request

run_sweeps = staff_permission_required(PERM_RUN_SWEEP)  # start, cancel, retry, import
see_sweeps = staff_permission_required(PERM_RUN_SWEEP, PERM_MANAGE_STUDY)  # watch sweeps, look at their images


def _model_rows(form: SweepForm) -> list[dict]:
    models = list(form.offered("image_models"))
    capabilities = selectors.worker_capabilities(image_models=models)
    by_pk = {m.pk: m for m in models}
    rows = []
    for widget in form["image_models"]:
        pk = int(str(widget.data["value"]))
        rows.append({"widget": widget, "model": by_pk.get(pk), "capability": capabilities.get(pk)})
    return rows


def _unloadable(models: list[ImageModel]) -> list[str]:
    capabilities = selectors.worker_capabilities(image_models=models)
    return [
        f"{m.name}: no worker can load it ({'; '.join(capabilities[m.pk]['reasons']) or 'no reason given'})"
        for m in models if capabilities[m.pk]["loadable"] is False
    ]


@run_sweeps
@require_http_methods(["GET", "POST"])
def sweep_new(request):
    form = SweepForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        models = list(data["image_models"])
        unloadable = _unloadable(models)
        if unloadable and not data["start_anyway"]:
            for line in unloadable:
                form.add_error("image_models", line)
            form.add_error("start_anyway", "Untick these models, or tick this to start anyway.")
        else:
            try:
                sweep = sweep_create(
                    suite=data["suite"], image_models=models, seeds=data["seeds"],
                    canvas_width=data["canvas_width"], canvas_height=data["canvas_height"],
                    image_format=data["image_format"], created_by=request.user, name=data["name"],
                    categories=data["categories"], sample=data["sample"], sample_seed=data["sample_seed"],
                )
            except SweepInvalid as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                return redirect("generation:sweep_detail", sweep_id=sweep.pk)
    context = {"form": form, "model_rows": _model_rows(form), "preview": _preview(form)}
    return render(request, "generation/sweep_new.html", context)


def _preview(form: SweepForm) -> dict:
    """Images, canvas and estimated time of the sweep the form describes (for whatever is valid so far)."""
    data = form.data
    suite = form.offered("suite").filter(pk=data.get("suite") or None).first() if data.get("suite") else None
    ids = [v for v in data.getlist("image_models") if str(v).isdigit()] if hasattr(data, "getlist") else []
    models = list(form.offered("image_models").filter(pk__in=ids))
    seeds = _int(data.get("seeds"), 1)
    sample = _int(data.get("sample"), None)
    categories = data.getlist("categories") if hasattr(data, "getlist") else []
    prompts = len(sweep_prompts_select(suite=suite, categories=categories)) if suite else 0
    prompt_count = min(prompts, sample) if sample else prompts
    estimate = selectors.sweep_estimate(prompt_count=prompt_count, image_models=models, seeds=max(seeds, 1))
    default_w, default_h = sweep_canvas_default(image_models=models)
    return {
        "suite": suite, "estimate": estimate, "matching_prompts": prompts, "sample": sample,
        "canvas": (_int(data.get("canvas_width"), None) or default_w, _int(data.get("canvas_height"), None) or default_h),
        "canvas_default": not (data.get("canvas_width") or data.get("canvas_height")),
        "unloadable": _unloadable(models),
    }


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@run_sweeps
def sweep_preview(request):
    """The sweep form's live preview (htmx): number of images and estimated time."""
    form = SweepForm(request.GET)
    return render(request, "generation/sweep_new.html#preview", {"preview": _preview(form)})


@run_sweeps
@require_http_methods(["POST"])
def workers_ask(request):
    """Ask every worker to report again which models it can load (answered within a heartbeat)."""
    n = worker_reports_request()
    messages.info(request, f"Asked {n} worker(s) to report again; reload in a few seconds.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("generation:sweep_new")
    return redirect(target)


@see_sweeps
def sweep_detail(request, sweep_id: int):
    sweep = get_object_or_404(Sweep.objects.select_related("suite"), pk=sweep_id)
    context = {
        "sweep": sweep,
        "progress": selectors.sweep_progress(sweep=sweep),
        "totals": selectors.sweep_totals(sweep=sweep),
        "errors": selectors.sweep_errors(sweep=sweep),
        "has_images": selectors.sweep_has_images(sweep=sweep),
        "cancellable": sweep.status in (SweepStatus.PENDING, SweepStatus.RUNNING),
    }
    template = "generation/sweep_detail.html#progress" if request.htmx else "generation/sweep_detail.html"
    return render(request, template, context)


@see_sweeps
def sweep_list(request):
    return render(request, "generation/sweep_list.html", {"rows": selectors.sweep_list_rows()})


@run_sweeps
@require_http_methods(["POST"])
def sweep_retry(request, sweep_id: int):
    """Re-render the failed images (after fixing what made them fail)."""
    sweep = get_object_or_404(Sweep, pk=sweep_id)
    count = sweep_retry_failed(sweep=sweep)
    messages.info(request, f"{count} failed image(s) sent back to the workers.")
    return redirect("generation:sweep_detail", sweep_id=sweep.pk)


@run_sweeps
@require_http_methods(["POST"])
def sweep_cancel_view(request, sweep_id: int):
    """Cancel: pending images are cancelled, images being rendered finish."""
    sweep = get_object_or_404(Sweep, pk=sweep_id)
    count = sweep_cancel(sweep=sweep)
    messages.info(request, f"Sweep cancelled: {count} pending image(s) cancelled; images being rendered finish.")
    return redirect("generation:sweep_detail", sweep_id=sweep.pk)


@see_sweeps
def sweep_gallery(request, sweep_id: int):
    """The contact sheet: prompts × models, filtered by category, model or failed only."""
    sweep = get_object_or_404(Sweep.objects.select_related("suite"), pk=sweep_id)
    category = request.GET.get("category", "")
    model_id = _int(request.GET.get("model"), None)
    failed_only = request.GET.get("failed") == "1"
    gallery = selectors.sweep_gallery(sweep=sweep, category=category, model_id=model_id, failed_only=failed_only,
                                      page=_int(request.GET.get("page"), 1))
    context = {
        "sweep": sweep, "gallery": gallery, "category": category, "model_id": model_id, "failed_only": failed_only,
        "all_models": list(sweep.image_models.order_by("name")),
        "failures": selectors.sweep_failures(sweep=sweep, model_id=model_id, category=category),
        "totals": selectors.sweep_totals(sweep=sweep),
        "query": request.GET.urlencode(),
    }
    return render(request, "generation/gallery.html", context)


@see_sweeps
def gallery_prompt(request, sweep_id: int, prompt_id: int):
    """One prompt: every model's images side by side, each with its facts and OCR text."""
    sweep = get_object_or_404(Sweep.objects.select_related("suite"), pk=sweep_id)
    items = selectors.sweep_prompt_generations(sweep=sweep, prompt_id=prompt_id)
    if not items:
        raise Http404("no images of this prompt in this sweep")
    return render(request, "generation/gallery_prompt.html",
                  {"sweep": sweep, "prompt": items[0]["generation"].prompt, "items": items})


@see_sweeps
def gallery_image(request, public_id: str):
    """One image at full size with everything known about how it was made."""
    generation = get_object_or_404(Generation.objects.select_related("sweep", "model", "prompt"), public_id=public_id)
    text = selectors.generation_text_checks(sweep=generation.sweep).get(generation.pk)
    return render(request, "generation/gallery_image.html", {
        "g": generation, "facts": selectors.generation_facts(generation=generation), "text": text,
    })


def _file_response(storage, name: str, content_type: str) -> FileResponse:
    response = FileResponse(storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@see_sweeps
def staff_image(request, public_id: str):
    """The stored (normalised) image for staff; the admin links here (/media/ is not served)."""
    generation = get_object_or_404(Generation, public_id=public_id)
    name = generation.image.name
    if not name or not generation.image.storage.exists(name):
        raise Http404("this image has no file (not rendered, or failed)")
    ext = name.rsplit(".", 1)[-1].lower()
    content_type = CONTENT_TYPES.get("jpeg" if ext == "jpg" else ext, "application/octet-stream")
    return _file_response(generation.image.storage, name, content_type)


@see_sweeps
def staff_thumbnail(request, public_id: str):
    """The image's gallery thumbnail, made the first time it is asked for and kept in storage."""
    generation = get_object_or_404(Generation, public_id=public_id)
    name = generation_thumbnail(generation=generation)
    if name is None:
        raise Http404("this image has no file")
    return _file_response(generation.image.storage, name, "image/jpeg")


@run_sweeps
@require_http_methods(["GET", "POST"])
def sweep_import(request, sweep_id: int):
    """Upload a model's images made elsewhere (zip or folder + manifest) into this sweep."""
    sweep = get_object_or_404(Sweep.objects.select_related("suite"), pk=sweep_id)
    form = ImageImportForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        bundle = bundle_from_uploads(files=[*data["images"], *data["folder"]])
        if data["manifest"]:
            bundle_set_manifest(bundle=bundle, name=data["manifest"].name, data=data["manifest"].read())
        try:
            result = sweep_images_import(sweep=sweep, model_name=data["model_name"], bundle=bundle,
                                         created_by=request.user)
        except ImageImportError as exc:
            problems = exc.problems
        else:
            messages.success(request, f"Imported {result['images']} images of {result['model'].name}.")
            return redirect(f"{reverse('generation:sweep_gallery', args=[sweep.pk])}?model={result['model'].pk}")
    status = 400 if problems else 200
    return render(request, "generation/sweep_import.html", {"sweep": sweep, "form": form, "problems": problems},
                  status=status)


# --------------------------------------------------------------------------- models: will it fit my card?


@see_sweeps
def model_list(request):
    """Every model a worker renders, with the smallest card it renders on (its latest VRAM profile)."""
    models = list(ImageModel.objects.exclude(backend=Backend.IMPORTED).order_by("name"))
    return render(request, "generation/model_list.html", {"rows": selectors.vram_model_rows(models=models)})


def _model_context(request, model: ImageModel, *, cards_text: str = "", error: str = "") -> dict:
    latest = selectors.vram_profile_latest(image_model=model)
    done = selectors.vram_profile_latest_done(image_model=model)
    return {
        "model": model, "latest": latest, "done": done,
        "fits": selectors.vram_profile_fits(profile=done) if done else [],
        "measured": selectors.vram_profile_settings(profile=latest) if latest else [],
        "unfinished": latest is not None and latest.status in (VramProfileStatus.QUEUED, VramProfileStatus.RUNNING),
        "history": list(model.vram_profiles.order_by("-created_at", "-id")[:10]),
        "may_profile": user_may(request.user, PERM_RUN_SWEEP) and model.backend != Backend.IMPORTED,
        "cards_text": cards_text or ",".join(map(str, CARD_CLASSES_GB)), "error": error,
    }


@see_sweeps
def model_detail(request, model_id: int):
    """A model's settings and "Will it fit my card?": its latest profile's fits-on table, the newest one's state."""
    model = get_object_or_404(ImageModel, pk=model_id)
    context = _model_context(request, model)
    template = "generation/model_detail.html#profile" if request.htmx else "generation/model_detail.html"
    return render(request, template, context)


@run_sweeps
@require_http_methods(["POST"])
def model_vram_profile(request, model_id: int):
    """Queue a VRAM profile of this model for a GPU worker (the button "Profile VRAM on a GPU worker")."""
    model = get_object_or_404(ImageModel, pk=model_id)
    cards_text = request.POST.get("cards", "")
    try:
        profile = vram_profile_request(image_model=model, cards=vram_cards_parse(text=cards_text),
                                       requested_by=request.user)
    except VramProfileInvalid as exc:
        return render(request, "generation/model_detail.html",
                      _model_context(request, model, cards_text=cards_text, error=exc.message), status=400)
    messages.info(request, f"VRAM profile {profile.pk} of {model.name} queued for a GPU worker "
                           f"(cards {', '.join(f'{c:g}' for c in profile.cards)} GB).")
    return redirect("generation:model_detail", model_id=model.pk)
