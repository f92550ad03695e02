"""Staff upload of a prompt suite: a thin shell over prompts.services.prompt_suite_import."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html

from evalsite.access import PERM_UPLOAD_SUITE, staff_permission_required

from .forms import SuiteUploadForm
from .models import PromptSuite
from .selectors import suite_summary
from .services import PromptFileInvalid, prompt_suite_import


@staff_permission_required(PERM_UPLOAD_SUITE)
def suite_upload(request: HttpRequest) -> HttpResponse:
    problems: list[str] = []
    warnings: list[str] = []
    status = 200
    if request.method == "POST":
        form = SuiteUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            data = upload.read(settings.PROMPT_FILE_MAX_BYTES + 1)
            try:
                result = prompt_suite_import(
                    path_or_name=upload.name,
                    data=data,
                    size=upload.size,
                    suite_name=form.cleaned_data["suite_name"],
                    fmt=form.cleaned_data["format"],
                    replace=form.cleaned_data["replace"],
                    created_by=request.user,
                )
            except PromptFileInvalid as exc:
                problems = exc.lines(upload.name)
                warnings = [w.format(upload.name) for w in exc.warnings]
                status = 400
            else:
                url = reverse("admin:prompts_promptsuite_change", args=[result.suite.pk])
                verb = "already held" if result.unchanged else "Imported"
                messages.success(
                    request,
                    format_html(
                        '{} {} prompts into suite <a href="{}">{}</a>.', verb, result.count, url, result.suite.name
                    ),
                )
                for warning in result.warnings:
                    messages.warning(request, warning.format(upload.name))
                return redirect(f"{reverse('prompts:suite_upload')}?suite={result.suite.pk}")
        else:
            status = 400
    else:
        form = SuiteUploadForm()
    imported = None
    if request.GET.get("suite", "").isdigit():
        suite = get_object_or_404(PromptSuite, pk=int(request.GET["suite"]))
        imported = {
            "suite": suite,
            "admin_url": reverse("admin:prompts_promptsuite_change", args=[suite.pk]),
            **suite_summary(suite=suite),
        }
    context = {
        "form": form,
        "problems": problems,
        "warnings": warnings,
        "imported": imported,
        "max_mb": settings.PROMPT_FILE_MAX_BYTES // (1024 * 1024),
    }
    return render(request, "prompts/suite_upload.html", context, status=status)
