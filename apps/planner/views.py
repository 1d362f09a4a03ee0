from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from advisor.api import flatten_errors
from apps.accounts.selectors import can_write
from apps.catalog.selectors import catalog_snapshot
from apps.planner import charts, presentation, selectors, services
from apps.planner.glossary import TERMS
from apps.planner.models import Recommendation
from apps.planner.perf.calibration import calibrate
from apps.planner.pipeline.workload import WorkloadError
from apps.planner.report import report_pdf
from apps.planner.serializers import CompareQuery, WhatIfQuery
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


def _status_context(recommendation: Recommendation) -> dict[str, Any]:
    started = recommendation.started_at or recommendation.created_at
    return {
        "recommendation": recommendation,
        "stage": presentation.STAGE_LABELS.get(recommendation.progress, ""),
        "stage_number": [name for name, _ in presentation.STAGES].index(recommendation.progress) + 1
        if recommendation.progress in {name for name, _ in presentation.STAGES}
        else 0,
        "stage_count": len(presentation.STAGES),
        "waited_s": (timezone.now() - started).total_seconds(),
    }


def plan_context(recommendation: Recommendation) -> dict[str, Any]:
    """Everything the plan page (and the report) shows, read through presentation."""
    result = recommendation.result or {}
    options = result.get("options") or []
    best = options[0] if options else None
    return {
        "recommendation": recommendation,
        "result": result,
        "best": best,
        "scale_to_zero": presentation.scale_to_zero(best) if best else None,
        "idle_hours": presentation.hour_ranges(presentation.idle_hours(best)) if best else "",
        "break_even": presentation.break_even_view(result),
        "api_groups": presentation.api_groups(result),
        "rejected_rows": presentation.rejected_rows(result),
        "rejected_summary": presentation.rejected_summary(result),
        "method_rows": presentation.method_rows(result.get("method") or {}),
        "feasibility": result.get("feasibility"),
        "infeasible": recommendation.status == "succeeded" and not options,
        "workload_inputs": recommendation.inputs,
    }


@require_GET
@login_required
def recommendation_detail(request: HtmxHttpRequest, recommendation_id: int) -> HttpResponse:
    recommendation = get_object_or_404(
        selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
    )
    services.recommendation_watch(recommendation=recommendation)
    if request.htmx and not recommendation.is_finished:
        return render(request, "planner/detail.html#status", _status_context(recommendation))
    if request.htmx and request.htmx.target == "plan-status":
        # Finished while the page was polling: reload the whole page with its charts.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    context = {**plan_context(recommendation), **_status_context(recommendation)}
    context["can_write"] = can_write(user=request.user, team=recommendation.workload.team)
    if context["best"] is not None:
        context["figures"] = _figures(recommendation)
    return render(request, "planner/detail.html", context)


@require_POST
@login_required
def suggestion_plan(request: HtmxHttpRequest, recommendation_id: int, index: int) -> HttpResponse:
    recommendation = get_object_or_404(
        selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
    )
    try:
        planned = services.recommendation_plan_suggestion(
            recommendation=recommendation, index=index, user=request.user
        )
    except services.SuggestionGone as exc:
        raise Http404("This plan has no such suggestion.") from exc
    return redirect(planned)


@require_GET
@login_required
def what_if(request: HtmxHttpRequest, recommendation_id: int) -> HttpResponse:
    """The what-if panel: the plan again with scaled traffic and prices and other targets, never stored."""
    recommendation = get_object_or_404(
        selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
    )
    query = WhatIfQuery(data=request.GET)
    if not query.is_valid():
        errors = flatten_errors(query.errors)
        return render(request, "planner/_what_if.html", {"errors": errors}, status=400)
    values = query.validated_data
    try:
        outcome = services.recommendation_what_if(recommendation=recommendation, **values)
    except WorkloadError as exc:
        return render(
            request, "planner/_what_if.html", {"errors": [{"field": "", "message": str(exc)}]}, status=400
        )
    baseline = recommendation.options[0] if recommendation.options else None
    options = outcome.result["options"]
    context = {
        "recommendation": recommendation,
        "values": values,
        "outcome": outcome,
        "best": options[0] if options else None,
        "baseline": baseline,
        "options": options,
        "elapsed_ms": outcome.elapsed_s * 1000,
    }
    return render(request, "planner/_what_if.html", context)


def _columns(request: HttpRequest, query: dict[str, Any]) -> list[presentation.Column]:
    visible = selectors.recommendations_visible_to(user=request.user)
    wanted = set(query.get("plan", [])) | {plan_id for plan_id, _ in query.get("option", [])}
    plans = {r.pk: r for r in visible.filter(pk__in=wanted)}
    missing = wanted - set(plans)
    if missing:
        raise Http404(f"No plan {', '.join(map(str, sorted(missing)))} you can see.")
    columns = []
    for plan_id in query.get("plan", []):
        r = plans[plan_id]
        best = r.options[0] if r.options else None
        title = f"Plan #{r.pk}: " + (presentation.option_title(best) if best else "no feasible option")
        columns.append(presentation.Column(r.pk, r.workload.name, r.inputs, best, title))
    for plan_id, rank in query.get("option", []):
        r = plans[plan_id]
        try:
            option = r.option(rank)
        except KeyError as exc:
            raise Http404(f"Plan #{plan_id} has no option {rank}.") from exc
        title = f"Plan #{r.pk} option {rank}: {presentation.option_title(option)}"
        columns.append(presentation.Column(r.pk, r.workload.name, r.inputs, option, title))
    return columns


@require_GET
@login_required
def compare(request: HtmxHttpRequest) -> HttpResponse:
    """Two or more plans (their best options) or options side by side, the rows that differ highlighted."""
    query = CompareQuery(data={"plan": request.GET.getlist("plan"), "option": request.GET.getlist("option")})
    if not query.is_valid():
        context = {
            "errors": flatten_errors(query.errors),
            "recent": selectors.recommendation_list(user=request.user)[:30],
        }
        return render(request, "planner/compare.html", context, status=400)
    columns = _columns(request, query.validated_data)
    context = {
        "columns": columns,
        "rows": presentation.comparison_rows(columns),
        "recent": selectors.recommendation_list(user=request.user)[:30],
    }
    return render(request, "planner/compare.html", context)


@require_GET
@login_required
def report(request: HtmxHttpRequest, recommendation_id: int) -> HttpResponse:
    """The plan as a PDF for finance: the same figures and charts as the page."""
    recommendation = get_object_or_404(
        selectors.recommendations_visible_to(user=request.user), pk=recommendation_id
    )
    if not recommendation.is_finished or recommendation.status == "failed":
        raise Http404("Only a finished plan has a report.")
    pdf = report_pdf(plan_context(recommendation))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="plan-{recommendation.pk}.pdf"'
    return response


@require_GET
def glossary(request: HttpRequest) -> HttpResponse:
    return render(
        request, "planner/glossary.html", {"terms": sorted(TERMS.values(), key=lambda t: t.label.lower())}
    )
