from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails
from rest_framework import serializers

from apps.accounts.selectors import can_write, teams_writable_by
from apps.planner.selectors import recommendation_list
from apps.workloads import selectors, services
from apps.workloads.charts import traffic_figure
from apps.workloads.forms import WorkloadForm


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@login_required
def workload_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    workloads = selectors.workload_list(user=request.user, name=query)
    template = "workloads/list.html#workload-table" if request.htmx else "workloads/list.html"
    return render(request, template, {"workloads": workloads, "q": query})


def _save(request: HtmxHttpRequest, form: WorkloadForm, workload: object | None) -> HttpResponse | None:
    """Run the service for a valid form; on a rule broken at save time, put its errors on the form."""
    assert form.document is not None
    team = form.cleaned_data["team"]
    try:
        if workload is None:
            saved = services.workload_create(team=team, document=form.document, user=request.user)
        else:
            saved = services.workload_update(workload=workload, document=form.document, user=request.user)  # type: ignore[arg-type]
    except serializers.ValidationError as exc:
        form.add_document_errors(exc)
        return None
    messages.success(request, f"Saved workload {saved.name}.")
    return redirect(saved)


@require_http_methods(["GET", "POST"])
@login_required
def workload_create(request: HtmxHttpRequest) -> HttpResponse:
    teams = teams_writable_by(user=request.user)
    if not teams.exists():
        raise PermissionDenied("You are a viewer in every team you belong to.")
    form = WorkloadForm(request.POST or None, request.FILES or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        response = _save(request, form, None)
        if response is not None:
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "workloads/form.html", {"form": form, "workload": None}, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def workload_edit(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    if not can_write(user=request.user, team=workload.team):
        raise PermissionDenied("Viewers cannot change anything in this team.")
    teams = teams_writable_by(user=request.user).filter(pk=workload.team_id)
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


@require_GET
@login_required
def workload_detail(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(selectors.workloads_visible_to(user=request.user), pk=workload_id)
    context = {
        "workload": workload,
        "document_json": json.dumps(workload.to_document(), indent=2),
        "traffic_figure": traffic_figure(workload.hourly_requests_per_s),
        "can_write": can_write(user=request.user, team=workload.team),
        "recommendations": recommendation_list(user=request.user, workload_id=workload.pk)[:5],
    }
    return render(request, "workloads/detail.html", context)


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
