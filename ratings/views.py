"""Panelist pages (/r/<token>/…) and the staff study pages (/studies/…). Thin: parse, call, render."""

from __future__ import annotations

import functools
import re

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from evalsite.access import PERM_EXPORT_RATINGS, PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, staff_permission_required
from evalsite.http import HtmxHttpRequest
from generation.engine.normalize import CONTENT_TYPES, pad_for_serving
from generation.models import Generation

from . import limits, quality, selectors, services
from .forms import CriterionForm, ExcludeForm, StudyCreateForm
from .models import Assignment, AssignmentKind, Panelist, Study, StudyStatus
from .services import RatingRefused

SESSION_PANELISTS = "ratings_panelists"  # {study_id: panelist token} for shared-link visitors
SCALE = range(1, 11)
SKIP_REASONS = ("The image did not load", "The image is offensive", "I cannot judge this one")
CHECKED = mark_safe(" checked")
IMAGE_STORAGE = Generation._meta.get_field("image").storage
FIELD = re.compile(r"(single|left|right)-([\w-]{1,50})")


def _private(response: HttpResponse) -> HttpResponse:
    """Panelist responses are personal and must never be cached or shared."""
    response["Cache-Control"] = "private, no-store"
    return response


# Per-panelist rate limit of each panelist endpoint (ratings.limits); answers count POSTs only.
PANELIST_RATES = {"assignment_answer": "answer", "assignment_skip": "answer", "assignment_change": "answer",
                  "panelist_image": "image"}
TOO_MANY = "Too many requests from this link or address; please wait a minute and try again."


def panelist_view(view):
    """Panelist responses, redirects and "not found" included, are private and never stored.

    Rate limits (issue 12): an address that sent too many wrong tokens gets 429 before any lookup;
    every "not found" counts against it; each panelist endpoint is limited per token.
    """
    rule = PANELIST_RATES.get(view.__name__)

    @functools.wraps(view)
    def wrapped(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        token = kwargs.get("token", "")
        if limits.over_limit(request, rule="token_miss", key="ip", increment=False):
            return _refused(request, services.TooManyRequests(TOO_MANY))
        if rule and (rule != "answer" or request.method == "POST") and limits.over_limit(
                request, rule=rule, key=limits.by(token)):
            return _refused(request, services.TooManyRequests(TOO_MANY), token=token)
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            response = render(request, "ratings/message.html", {"message": "This link is not valid."}, status=404)
        if response.status_code == 404:
            limits.over_limit(request, rule="token_miss", key="ip")
        return _private(response)

    return wrapped


def _refused(request: HtmxHttpRequest, error: RatingRefused, *, token: str = "") -> HttpResponse:
    template = "ratings/_message.html" if request.htmx else "ratings/message.html"
    response = render(request, template, {"message": error.message, "token": token}, status=error.status_code)
    return _private(response)


# --- panelist pages -------------------------------------------------------------


def _panelist_or_404(token: str) -> Panelist:
    panelist = selectors.panelist_by_token(token=token)
    if panelist is None:
        raise Http404("This link is not valid.")
    return panelist


def _item_context(*, panelist: Panelist, assignment: Assignment | None, chosen: dict | None = None,
                  error: str = "", changing: dict | None = None) -> dict:
    """What the rating page shows: images by side, the prompt, one 1-10 scale per criterion."""
    changeable = selectors.panelist_changeable_refs(panelist=panelist, now=timezone.now())
    ctx = {"panelist": panelist, "study": panelist.study, "token": panelist.token, "assignment": assignment,
           "error": error, "skip_reasons": SKIP_REASONS, "changing": changing,
           "previous_ref": changeable[0][1] if changeable else None, "change_last": selectors.CHANGE_LAST,
           "progress": selectors.panelist_progress(panelist=panelist, current=None if changing else assignment),
           "canvas": (panelist.study.sweep.canvas_width, panelist.study.sweep.canvas_height)}
    if assignment is None:
        return ctx
    chosen = chosen or {}
    criteria = selectors.criteria_for_prompt(study=panelist.study, prompt=assignment.shown_prompt)
    blocks = []
    for shown in selectors.assignment_shown(assignment=assignment):
        fields = []
        for c in criteria:
            name = f"{shown.side}-{c.key}"
            picked = str(chosen.get(name, ""))
            # Built here rather than in a template loop: ten radios per scale, on the hot path.
            options = format_html_join(
                "\n", '<label><input type="radio" name="{}" value="{}" required{}><span>{}</span></label>',
                ((name, v, CHECKED if str(v) == picked else "", v) for v in SCALE),
            )
            fields.append({"name": name, "criterion": c, "options": options})
        blocks.append({"shown": shown, "fields": fields})
    ctx.update({"prompt": assignment.shown_prompt, "blocks": blocks, "is_pair": assignment.kind == AssignmentKind.PAIR})
    return ctx


def _render_item(request: HtmxHttpRequest, panelist: Panelist, assignment: Assignment | None, *, saved: str = "",
                 chosen: dict | None = None, error: str = "", status: int = 200,
                 changing: dict | None = None) -> HttpResponse:
    ctx = _item_context(panelist=panelist, assignment=assignment, chosen=chosen, error=error,
                        changing=changing)
    ctx["saved"] = saved
    template = "ratings/_item.html" if request.htmx else "ratings/rate.html"
    return _private(render(request, template, ctx, status=status))


@require_GET
@panelist_view
def panelist_home(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """/r/<token>/: a panelist's page, or a study's shared link (which mints a panelist)."""
    panelist = selectors.panelist_by_token(token=token)
    if panelist is None:
        study = selectors.study_by_share_token(token=token)
        if study is None:
            raise Http404("This link is not valid.")
        known = request.session.get(SESSION_PANELISTS, {}).get(str(study.pk))
        if known and Panelist.objects.filter(token=known, revoked_at__isnull=True).exists():
            return redirect("ratings:panelist_home", token=known)
        if study.status != StudyStatus.OPEN:
            return _refused(request, services.StudyNotOpen("This study is not open for rating."))
        return _private(render(request, "ratings/consent.html", {"study": study, "token": token}))
    try:
        services.panelist_check(panelist=panelist)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    if panelist.consented_at is None:
        return _private(render(request, "ratings/consent.html", {"study": panelist.study, "token": token,
                                                                 "panelist": panelist}))
    try:
        assignment = services.assignment_next(panelist=panelist)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    return _render_item(request, panelist, assignment)


@require_POST
@panelist_view
def panelist_start(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Consent given: start rating (a shared link first mints the panelist and remembers it)."""
    panelist = selectors.panelist_by_token(token=token)
    try:
        if panelist is None:
            study = selectors.study_by_share_token(token=token)
            if study is None:
                raise Http404("This link is not valid.")
            known = request.session.get(SESSION_PANELISTS, {}).get(str(study.pk))
            panelist = Panelist.objects.filter(token=known, study=study).first() if known else None
            if panelist is None:
                if (limits.over_limit(request, rule="share_client", key="ip")
                        or limits.over_limit(request, rule="share_study", key=limits.by(f"study-{study.pk}"))):
                    raise services.TooManyRequests(TOO_MANY)
                panelist = services.panelist_from_share(study=study)
                remembered = dict(request.session.get(SESSION_PANELISTS, {}))
                remembered[str(study.pk)] = panelist.token
                request.session[SESSION_PANELISTS] = remembered
            panelist = _panelist_or_404(panelist.token)  # again, with its study (as a token link loads it)
        services.panelist_check(panelist=panelist)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    services.panelist_consent(panelist=panelist)
    return redirect("ratings:panelist_home", token=panelist.token)


def _post_once(request: HtmxHttpRequest) -> None:
    """Every field of an answer comes once: a field sent twice is refused (400), never "last one wins"."""
    for name, values in request.POST.lists():
        if len(values) > 1:
            raise services.InvalidScores(f"The field {name[:60]!r} was sent {len(values)} times; send each once.")


def _answers_from_post(request: HtmxHttpRequest) -> dict[tuple[str, str], str]:
    """Scores as the page names them: "<side>-<criterion key>" (never an image id); each field once."""
    _post_once(request)
    answers: dict[tuple[str, str], str] = {}
    for name in request.POST:
        match = FIELD.fullmatch(name)
        if match:
            answers[(match[1], match[2])] = request.POST[name]
    return answers


def _elapsed(request: HtmxHttpRequest) -> int | None:
    """The page's own timer, a hint only: the service measures the time per item itself."""
    raw = request.POST.get("elapsed_ms", "")
    return int(raw) if raw.isdigit() and int(raw) < 86_400_000 else None


@require_POST
@panelist_view
def assignment_answer(request: HtmxHttpRequest, token: str, ref: str) -> HttpResponse:
    """Save the scores of one item and answer with the next one (an htmx swap, no page reload)."""
    panelist = _panelist_or_404(token)
    assignment_id = selectors.assignment_id_by_ref(panelist=panelist, ref=ref)
    try:
        services.assignment_submit_sides(assignment_id=assignment_id, panelist=panelist,
                                         answers=_answers_from_post(request), client_elapsed_ms=_elapsed(request))
    except services.InvalidScores as error:
        assignment = selectors.assignment_for_panelist(panelist=panelist, assignment_id=assignment_id)
        return _render_item(request, panelist, assignment, chosen=request.POST.dict(), error=error.message,
                            status=error.status_code)
    except (services.AlreadyAnswered, services.ItemExpired) as error:
        return _next_after(request, panelist, saved=error.message, status=error.status_code)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    return _next_after(request, panelist, saved="Saved.")


def _next_after(request: HtmxHttpRequest, panelist: Panelist, *, saved: str, status: int = 200) -> HttpResponse:
    if not request.htmx:
        messages.info(request, saved)
        return redirect("ratings:panelist_home", token=panelist.token)
    try:
        following = services.assignment_next(panelist=panelist)
    except RatingRefused as error:
        return _refused(request, error, token=panelist.token)
    return _render_item(request, panelist, following, saved=saved, status=status)


def _changing(panelist: Panelist, assignment_id: int) -> dict | None:
    """Where this answer sits among those the panelist may change (None: it can't be changed)."""
    rows = selectors.panelist_changeable_refs(panelist=panelist, now=timezone.now())
    ids = [pk for pk, _ in rows]
    if assignment_id not in ids:
        return None
    i = ids.index(assignment_id)  # links carry refs, never the sequential ids
    return {"index": i + 1, "count": len(ids), "older": rows[i + 1][1] if i + 1 < len(ids) else None,
            "newer": rows[i - 1][1] if i else None}


@panelist_view
def assignment_change(request: HtmxHttpRequest, token: str, ref: str) -> HttpResponse:
    """ "Previous": GET shows one of the last answers with its scores; POST replaces them."""
    panelist = _panelist_or_404(token)
    assignment_id = selectors.assignment_id_by_ref(panelist=panelist, ref=ref)
    try:
        services.panelist_check(panelist=panelist)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    if request.method == "POST":
        try:
            services.assignment_change_sides(assignment_id=assignment_id, panelist=panelist,
                                             answers=_answers_from_post(request))
        except services.InvalidScores as error:
            assignment = selectors.assignment_for_panelist(panelist=panelist, assignment_id=assignment_id)
            return _render_item(request, panelist, assignment, chosen=request.POST.dict(), error=error.message,
                                status=error.status_code, changing=_changing(panelist, assignment_id))
        except RatingRefused as error:
            return _next_after(request, panelist, saved=error.message, status=error.status_code)
        return _next_after(request, panelist, saved="Answer changed.")
    if request.method != "GET":
        return HttpResponse(status=405)
    changing = _changing(panelist, assignment_id)
    assignment = selectors.assignment_for_panelist(panelist=panelist, assignment_id=assignment_id)
    if changing is None or assignment is None:
        return _refused(request, services.AnswerLocked(
            f"Only your last {selectors.CHANGE_LAST} answers of this sitting can be changed."), token=token)
    return _render_item(request, panelist, assignment, changing=changing,
                        chosen=selectors.assignment_answers(assignment=assignment))


@require_POST
@panelist_view
def assignment_skip(request: HtmxHttpRequest, token: str, ref: str) -> HttpResponse:
    panelist = _panelist_or_404(token)
    assignment_id = selectors.assignment_id_by_ref(panelist=panelist, ref=ref)
    reason = request.POST.get("reason", "")
    if reason == "other":
        reason = request.POST.get("other", "")
    try:
        _post_once(request)
        services.assignment_skip(assignment_id=assignment_id, panelist=panelist, reason=reason)
    except services.InvalidScores as error:
        assignment = selectors.assignment_for_panelist(panelist=panelist, assignment_id=assignment_id)
        return _render_item(request, panelist, assignment, error=error.message, status=error.status_code)
    except services.AlreadyAnswered as error:
        return _next_after(request, panelist, saved=error.message, status=error.status_code)
    except RatingRefused as error:
        return _refused(request, error, token=token)
    return _next_after(request, panelist, saved="Skipped.")


@require_GET
@panelist_view
def panelist_image(request: HtmxHttpRequest, token: str, public_id: str) -> HttpResponse:
    """An image by its opaque id, only for the panelist whose open item shows it.

    The body is the stored, normalised file padded to one size per canvas and format, with one
    chunk layout (generation.engine.normalize.pad_for_serving: byte size told models apart); the
    headers carry only type, length and no-cache (no file name, no dates, no ETag).
    """
    found = selectors.panelist_open_image(token=token, public_id=public_id)
    if found is None:
        return HttpResponse("Not found.", status=404, content_type="text/plain")
    name, image_format, width, height = found
    with IMAGE_STORAGE.open(name, "rb") as fh:
        body = pad_for_serving(fh.read(), fmt=image_format, width=width, height=height)
    return HttpResponse(body, content_type=CONTENT_TYPES.get(image_format, "application/octet-stream"))


# --- staff pages ----------------------------------------------------------------


@staff_permission_required(PERM_MANAGE_STUDY, PERM_VIEW_RESULTS, PERM_EXPORT_RATINGS)
def study_list(request: HtmxHttpRequest) -> HttpResponse:
    studies = Study.objects.select_related("sweep").order_by("-created_at")
    return render(request, "ratings/study_list.html", {"studies": studies})


@staff_permission_required(PERM_MANAGE_STUDY)
def study_new(request: HtmxHttpRequest) -> HttpResponse:
    form = StudyCreateForm(request.POST or None, initial={"sweep": request.GET.get("sweep")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            study = services.study_create(
                sweep=data["sweep"], name=data["name"], mode=data["mode"], ratings_per_item=data["ratings_per_item"],
                gold_enabled=data["gold_enabled"], instructions=data["instructions"], created_by=request.user,
                items_per_panelist=data.get("items_per_panelist") or 0,
            )
        except services.StudySetupError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Study {study.name!r} created (draft). Open it when you are ready.")
            return redirect("ratings:study_dashboard", pk=study.pk)
    return render(request, "ratings/study_new.html", {"form": form}, status=400 if form.errors else 200)


@staff_permission_required(PERM_MANAGE_STUDY)
def study_dashboard(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study.objects.select_related("sweep", "sweep__suite"), pk=pk)
    ctx = {
        "study": study,
        "progress": selectors.study_progress(study=study),
        "sweep_progress": selectors.study_sweep_progress(study=study),
        "quality": quality.panelist_quality(study=study),
        "criteria": study.criteria.all(),
        "criterion_form": CriterionForm(),
        "share_url": selectors.study_share_url(study=study),
        "invite_url": request.session.pop("ratings_new_invite", ""),
        "gold_fail_score": selectors.GOLD_FAIL_SCORE,
    }
    return render(request, "ratings/study_dashboard.html", ctx)


def _study_action(request: HtmxHttpRequest, pk: int) -> Study:
    return get_object_or_404(Study, pk=pk)


@staff_permission_required(PERM_MANAGE_STUDY)
@require_POST
def study_set_status(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    study = _study_action(request, pk)
    try:
        if action == "open":
            services.study_open(study=study)
            messages.success(request, "The study is open.")
        elif action == "close":
            services.study_close(study=study)
            messages.success(request, "The study is closed.")
        else:
            raise Http404
    except services.StudySetupError as error:
        messages.error(request, error.message)
    return redirect("ratings:study_dashboard", pk=study.pk)


@staff_permission_required(PERM_MANAGE_STUDY)
@require_POST
def study_invite(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    study = _study_action(request, pk)
    if limits.over_limit(request, rule="invite", key="user"):
        messages.error(request, "Too many invite links in the last hour; please wait.")
        return HttpResponse(TOO_MANY, status=429, content_type="text/plain")
    panelist = services.panelist_create(study=study)
    request.session["ratings_new_invite"] = selectors.panelist_invite_url(panelist=panelist)
    messages.success(request, f"New invite link for {panelist.pseudonym}.")
    return redirect("ratings:study_dashboard", pk=study.pk)


@staff_permission_required(PERM_MANAGE_STUDY)
@require_POST
def study_share(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    study = _study_action(request, pk)
    if request.POST.get("enable") == "1":
        services.study_share_enable(study=study)
    else:
        services.study_share_disable(study=study)
    return redirect("ratings:study_dashboard", pk=study.pk)


@staff_permission_required(PERM_MANAGE_STUDY)
@require_POST
def study_criterion(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    study = _study_action(request, pk)
    form = CriterionForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            services.criterion_save(study=study, key=d["key"], name=d["name"], question=d["question"],
                                    categories=form.category_list(), text_prompts_only=d["text_prompts_only"])
            messages.success(request, f"Criterion {d['key']!r} saved.")
        except services.StudySetupError as error:
            messages.error(request, error.message)
    else:
        messages.error(request, "Criterion not saved: " + "; ".join(
            f"{field}: {' '.join(map(str, errs))}" for field, errs in form.errors.items()))
    return redirect("ratings:study_dashboard", pk=study.pk)


@staff_permission_required(PERM_MANAGE_STUDY)
@require_POST
def panelist_manage(request: HtmxHttpRequest, pk: int, panelist_id: int, action: str) -> HttpResponse:
    panelist = get_object_or_404(Panelist.objects.select_related("study"), pk=panelist_id, study_id=pk)
    if action == "revoke":
        services.panelist_revoke(panelist=panelist)
        messages.success(request, f"Link of {panelist.pseudonym} revoked.")
    elif action == "exclude":
        form = ExcludeForm(request.POST)
        form.is_valid()
        excluded = bool(form.cleaned_data.get("excluded"))
        services.panelist_exclude(panelist=panelist, excluded=excluded, reason=form.cleaned_data.get("reason", ""))
        messages.success(request, f"{panelist.pseudonym} {'excluded from' if excluded else 'included in'} the scores.")
    else:
        raise Http404
    return redirect(reverse("ratings:study_dashboard", kwargs={"pk": pk}) + "#panelists")
