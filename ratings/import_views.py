"""Staff upload of ratings collected elsewhere: a thin shell over ratings.services.imports.ratings_import."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html

from evalsite.access import PERM_MANAGE_STUDY, staff_permission_required

from .forms import RatingsImportForm
from .models import Study
from .services.imports import RatingFileInvalid, ratings_import


@staff_permission_required(PERM_MANAGE_STUDY)  # it creates a study
def ratings_upload(request: HttpRequest) -> HttpResponse:
    problems: list[str] = []
    status = 200
    if request.method == "POST":
        form = RatingsImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            data = upload.read(settings.RATINGS_FILE_MAX_BYTES + 1)
            try:
                result = ratings_import(path_or_name=upload.name, data=data, size=upload.size,
                                        study_name=form.cleaned_data["study_name"], fmt=form.cleaned_data["format"],
                                        created_by=request.user)
            except RatingFileInvalid as exc:
                problems = exc.lines(upload.name)
                status = 400
            else:
                gold = f"; {result.n_gold_skipped} attention-check rows left out" if result.n_gold_skipped else ""
                messages.success(request, format_html(
                    'Imported {} ratings ({} models, {} prompts, {} raters, {} pairs{}) into study <a href="{}">{}</a>.',
                    result.n_ratings, result.n_models, result.n_prompts, result.n_raters, result.n_pairs, gold,
                    reverse("ratings:study_dashboard", args=[result.study.pk]), result.study.name))
                return redirect(f"{reverse('ratings:ratings_upload')}?study={result.study.pk}")
        else:
            status = 400
    else:
        form = RatingsImportForm()
    imported = None
    if request.GET.get("study", "").isdigit():
        imported = get_object_or_404(Study.objects.exclude(imported_from=""), pk=int(request.GET["study"]))
    context = {"form": form, "problems": problems, "imported": imported,
               "max_mb": settings.RATINGS_FILE_MAX_BYTES // (1024 * 1024)}
    return render(request, "ratings/ratings_upload.html", context, status=status)
