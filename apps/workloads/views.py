from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails
from rest_framework import serializers

from apps.accounts.models import Team
from apps.accounts.selectors import can_write, teams_of, teams_writable_by
from apps.planner.selectors import recommendation_list
from apps.workloads import selectors, services
from apps.workloads.charts import length_figure, traffic_figure
from apps.workloads.forms import LogImportForm, WorkloadForm
from apps.workloads.logs import REASONS
from apps.workloads.models import Workload
from apps.workloads.traffic import TrafficImportError, curve_from_csv
from apps.workloads.uploads import UploadTooLarge, check_upload_size, csrf_rejection


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@login_required
def workload_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    workloads = selectors.workload_list(user=request.user, name=query)
    template = "workloads/list.html#workload-table" if request.htmx else "workloads/list.html"
    context = {
        "workloads": workloads,
        "q": query,
        "can_create": teams_writable_by(user=request.user).exists(),
    }
    return render(request, template, context)


def _save(request: HtmxHttpRequest, form: WorkloadForm, workload: Workload | None) -> HttpResponse | None:
    """Run the service for a valid form; on a rule broken at save time, put its errors on the form."""
    assert form.document is not None
    team = form.cleaned_data["team"]
    try:
        if workload is None:
            saved = services.workload_create(team=team, document=form.document, user=request.user)
        else:
            saved = services.workload_update(
                workload=workload, document=form.document, user=request.user, keep_derived=True
            )
    except serializers.ValidationError as exc:
        form.add_document_errors(exc)
        return None
    messages.success(request, f"Saved workload {saved.name}.")
    return redirect(saved)


def _upload_refusal(request: HttpRequest) -> tuple[HttpResponse | None, str]:
    """For a POST whose sender may write: (the CSRF failure response, or None), and the upload-size error to
    show, or "". The size is judged from Content-Length before the CSRF check, which may read the body."""
    if request.method != "POST":
        return None, ""
    try:
        check_upload_size(request)
    except UploadTooLarge as exc:
        return None, str(exc)
    return csrf_rejection(request), ""


@csrf_exempt  # the CSRF check runs after the role check, before the body is read: apps/workloads/uploads.py
@require_http_methods(["GET", "POST"])
@login_required
def workload_create(request: HtmxHttpRequest) -> HttpResponse:
    teams = teams_writable_by(user=request.user)
    if not teams.exists():
        raise PermissionDenied("You are a viewer in every team you belong to.")
    rejected, too_large = _upload_refusal(request)
    if rejected is not None:
        return rejected
    if too_large:
        form = WorkloadForm(teams=teams)
        context = {"form": form, "workload": None, "upload_error": too_large}
        return render(request, "workloads/form.html", context, status=413)
    form = WorkloadForm(request.POST or None, request.FILES or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        response = _save(request, form, None)
        if response is not None:
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "workloads/form.html", {"form": form, "workload": None}, status=status)


@csrf_exempt  # the CSRF check runs after the role check, before the body is read: apps/workloads/uploads.py
@require_http_methods(["GET", "POST"])
@login_required
def workload_edit(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    if not can_write(user=request.user, team=workload.team):
        raise PermissionDenied("Viewers cannot change anything in this team.")
    teams = teams_writable_by(user=request.user).filter(pk=workload.team_id)
    rejected, too_large = _upload_refusal(request)
    if rejected is not None:
        return rejected
    if too_large:
        form = WorkloadForm(initial=WorkloadForm.initial_from(workload), teams=teams)
        context = {"form": form, "workload": workload, "upload_error": too_large}
        return render(request, "workloads/form.html", context, status=413)
    if request.method == "POST":
        form = WorkloadForm(request.POST, request.FILES or None, teams=teams)
        if form.is_valid():
            response = _save(request, form, workload)
            if response is not None:
                return response
        return render(request, "workloads/form.html", {"form": form, "workload": workload}, status=400)
    form = WorkloadForm(initial=WorkloadForm.initial_from(workload), teams=teams)
    return render(request, "workloads/form.html", {"form": form, "workload": workload})


@require_POST
@login_required
def workload_validate(request: HtmxHttpRequest) -> HttpResponse:
    """Inline validation while typing: errors for the fields the user has filled, swapped in out of band."""
    form = WorkloadForm(request.POST, teams=teams_writable_by(user=request.user))
    form.is_valid()
    filled = {name for name, value in request.POST.lists() if any(v.strip() for v in value)}
    errors: dict[str, list[str]] = {
        name: [str(e) for e in form.errors.get(name, [])] if name in filled else [] for name in form.fields
    }
    return render(request, "workloads/form.html#field-errors", {"errors": errors})


@csrf_exempt  # the CSRF check runs after the role check, before the body is read: apps/workloads/uploads.py
@require_POST
@login_required
def traffic_preview(request: HtmxHttpRequest) -> HttpResponse:
    """The hourly curve a chosen traffic CSV gives, read the way saving the form reads it, so the form can show
    it before it is saved. Nothing is stored."""
    if not teams_writable_by(user=request.user).exists():
        raise PermissionDenied("You are a viewer in every team you belong to.")
    rejected, too_large = _upload_refusal(request)
    if rejected is not None:
        return rejected
    if too_large:
        return JsonResponse({"error": too_large}, status=413)
    upload = request.FILES.get("traffic_csv")
    if upload is None:
        return JsonResponse({"error": "Choose a CSV file (field traffic_csv)."}, status=400)
    try:
        rates = curve_from_csv(upload)
    except TrafficImportError as exc:
        return JsonResponse({"error": f"traffic_csv: {exc}"}, status=400)
    return JsonResponse(
        {
            "hourly_requests_per_s": rates,
            "peak_requests_per_s": max(rates),
            "requests_per_day": sum(rate * 3600 for rate in rates),
        }
    )


@require_GET
@login_required
def workload_detail(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    traffic = workload.traffic
    context = {
        "workload": workload,
        "document_json": json.dumps(workload.to_document(), indent=2),
        "traffic_figure": traffic_figure(
            workload.hourly_requests_per_s,
            weekday=traffic.get("weekday_hourly_requests_per_s"),
            weekend=traffic.get("weekend_hourly_requests_per_s"),
        ),
        "burstiness": _burstiness_rows(traffic.get("burstiness_cv")),
        "length_figures": {
            key: length_figure(workload_lengths["histogram"], title=title)
            for key, title, workload_lengths in (
                ("prompt", "Prompt tokens", workload.prompt_tokens),
                ("output", "Output tokens", workload.output_tokens),
            )
            if "histogram" in workload_lengths
        },
        "skipped": [
            {"reason": REASONS.get(reason, reason), "count": count}
            for reason, count in workload.import_summary.get("skipped_by_reason", {}).items()
        ],
        "can_write": can_write(user=request.user, team=workload.team),
        "recommendations": recommendation_list(user=request.user, workload_id=workload.pk)[:5],
    }
    return render(request, "workloads/detail.html", context)


def _burstiness_rows(cv: float | list[float] | None) -> list[float] | None:
    if cv is None:
        return None
    return cv if isinstance(cv, list) else [cv]


def _import_team(request: HttpRequest) -> tuple[Team, list[Team]]:
    """The team a log goes to, from ?team= (the URL, not the body: it is checked before the upload is read)."""
    teams = list(teams_writable_by(user=request.user).order_by("name"))
    if not teams:
        raise PermissionDenied("You are a viewer in every team you belong to.")
    slug = request.GET.get("team")
    if not slug:
        return teams[0], teams
    team = next((team for team in teams if team.slug == slug), None)
    if team is None:
        if teams_of(user=request.user).filter(slug=slug).exists():
            raise PermissionDenied("Viewers cannot change anything in this team.")
        raise Http404("No such team.")
    return team, teams


@csrf_exempt  # the CSRF check runs after the role check, before the body is read: apps/workloads/uploads.py
@require_http_methods(["GET", "POST"])
@login_required
def workload_import_log(request: HtmxHttpRequest) -> HttpResponse:
    team, teams = _import_team(request)
    context: dict[str, object] = {
        "team": team,
        "teams": teams,
        "action": f"{reverse('workloads:import-log')}?team={team.slug}",
        "upload_limit": settings.UPLOAD_MAX_BYTES,
    }
    template = "workloads/import_log.html#import-form" if request.htmx else "workloads/import_log.html"
    rejected, too_large = _upload_refusal(request)
    if rejected is not None:
        return rejected
    if request.method == "GET" or too_large:
        context.update(form=LogImportForm(), upload_error=too_large)
        return render(request, template, context, status=413 if too_large else 200)
    form = LogImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["log_file"]
        try:
            workload = services.workload_import_log(
                team=team,
                source=upload,
                options=form.options(),
                user=request.user,
                file_name=upload.name or "",
            )
        except serializers.ValidationError as exc:
            form.add_service_errors(exc)
        else:
            summary = workload.import_summary
            messages.success(
                request,
                f"Imported {summary['rows_used']} requests ({summary['format']} format) into {workload.name}; "
                f"{summary['rows_skipped']} rows skipped.",
            )
            if request.htmx:
                return HttpResponseClientRedirect(workload.get_absolute_url())
            return redirect(workload)
    context["form"] = form
    return render(request, template, context, status=400)


@require_POST
@login_required
def workload_delete(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    services.workload_delete(workload=workload, user=request.user)
    messages.success(request, f"Deleted workload {workload.name}.")
    return redirect("workloads:list")


@require_GET
@login_required
def workload_download(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    response = HttpResponse(json.dumps(workload.to_document(), indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="workload-{workload.pk}.json"'
    return response
