"""Staff pages to start a sweep and watch it (htmx polls the progress partial)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from evalsite.access import PERM_MANAGE_STUDY, PERM_RUN_SWEEP, staff_permission_required
from generation.forms import SweepForm
from generation.models import Sweep
from generation.selectors import sweep_errors, sweep_progress, sweep_totals
from generation.services import sweep_create, sweep_retry_failed


@staff_permission_required(PERM_RUN_SWEEP)
@require_http_methods(["GET", "POST"])
def sweep_new(request):
    form = SweepForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sweep = sweep_create(
                suite=data["suite"], image_models=list(data["image_models"]), seeds=data["seeds"],
                canvas_width=data["canvas_width"], canvas_height=data["canvas_height"],
                image_format=data["image_format"], created_by=request.user,
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            return redirect("generation:sweep_detail", sweep_id=sweep.pk)
    return render(request, "generation/sweep_new.html", {"form": form})


@staff_permission_required(PERM_RUN_SWEEP, PERM_MANAGE_STUDY)
@require_http_methods(["GET"])
def sweep_detail(request, sweep_id: int):
    sweep = get_object_or_404(Sweep.objects.select_related("suite"), pk=sweep_id)
    context = {
        "sweep": sweep,
        "progress": sweep_progress(sweep=sweep),
        "totals": sweep_totals(sweep=sweep),
        "errors": sweep_errors(sweep=sweep),
    }
    template = "generation/sweep_detail.html#progress" if request.htmx else "generation/sweep_detail.html"
    return render(request, template, context)


@staff_permission_required(PERM_RUN_SWEEP, PERM_MANAGE_STUDY)
@require_http_methods(["GET"])
def sweep_list(request):
    sweeps = Sweep.objects.select_related("suite").order_by("-created_at")[:100]
    return render(request, "generation/sweep_list.html", {"sweeps": sweeps})


@staff_permission_required(PERM_RUN_SWEEP)
@require_http_methods(["POST"])
def sweep_retry(request, sweep_id: int):
    """Re-render the failed images (after fixing what made them fail)."""
    sweep = get_object_or_404(Sweep, pk=sweep_id)
    count = sweep_retry_failed(sweep=sweep)
    messages.info(request, f"{count} failed image(s) sent back to the workers.")
    return redirect("generation:sweep_detail", sweep_id=sweep.pk)
