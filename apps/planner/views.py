from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from apps.catalog.selectors import catalog_snapshot
from apps.planner import charts, selectors, services
from apps.planner.models import Recommendation
from apps.planner.perf.calibration import calibrate
from apps.planner.services import measured_points_for
from apps.workloads.selectors import workloads_visible_to


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_POST
@login_required
def plan_create(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(workloads_visible_to(user=request.user), pk=workload_id)
    recommendation = services.recommendation_request(workload=workload, user=request.user)
    return redirect(recommendation)


@require_GET
@login_required
def recommendation_list(request: HtmxHttpRequest) -> HttpResponse:
    recommendations = selectors.recommendation_list(user=request.user)[:100]
    return render(request, "planner/list.html", {"recommendations": recommendations})


def _figures(recommendation: Recommendation) -> dict[str, Any]:
    result = recommendation.result or {}
    inputs = recommendation.inputs
    catalog = catalog_snapshot()
    measured = measured_points_for(recommendation.workload.team)
    return {
        "replicas": charts.replicas_figure(result, inputs["traffic"]["hourly_requests_per_s"]),
        "cost": charts.cost_figure(result),
        "apis": charts.api_figure(result),
        "latency": charts.latency_figure(
            result,
            catalog=catalog,
            calibration=calibrate(catalog, tuple(measured)),
            measured=measured,
            isl=round(inputs["prompt_tokens"]["mean"]),
            osl=round(inputs["output_tokens"]["mean"]),
        ),
    }


@require_GET
@login_required
def recommendation_detail(request: HtmxHttpRequest, recommendation_id: int) -> HttpResponse:
    recommendation = get_object_or_404(
        selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
    )
    context: dict[str, Any] = {"recommendation": recommendation, "result": recommendation.result or {}}
    if request.htmx and not recommendation.is_finished:
        return render(request, "planner/detail.html#status", context)
    if request.htmx:  # finished while the page was polling: reload the whole page with its charts
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    if recommendation.status == "succeeded":
        context["figures"] = _figures(recommendation)
    return render(request, "planner/detail.html", context)
