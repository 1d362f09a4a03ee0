from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails
from rest_framework import serializers

from apps.accounts.selectors import can_write
from apps.benchmarks import selectors, services
from apps.benchmarks.forms import RunRequestForm
from apps.benchmarks.models import RunStatus
from apps.workloads.selectors import workloads_visible_to


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _int_or_none(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


@require_GET
@login_required
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    workload_id = _int_or_none(request.GET.get("workload"))
    runs = selectors.run_list(user=request.user, workload_id=workload_id, status=status)[:200]
    context = {"runs": runs, "status": status, "statuses": RunStatus.choices, "workload_id": workload_id}
    template = "benchmarks/run_list.html#run-table" if request.htmx else "benchmarks/run_list.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@login_required
def run_new(request: HtmxHttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(workloads_visible_to(user=request.user), pk=workload_id)
    if not can_write(user=request.user, team=workload.team):
        raise PermissionDenied("Viewers cannot start benchmark runs.")
    data = request.POST if request.method == "POST" else request.GET
    shrink = data.get("shrink") in {"on", "1", "true"}
    options = selectors.candidate_options(
        workload=workload, shrink=shrink, isl=_int_or_none(data.get("isl")), osl=_int_or_none(data.get("osl"))
    )
    initial = {"candidates": [v.candidate.key for v in options.runnable], "shrink": shrink}
    form = RunRequestForm(request.POST or None, runnable=options.runnable, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.benchmark_run_request(
                workload=workload, user=request.user, **form.to_service_kwargs()
            )
        except serializers.ValidationError as exc:
            form.add_service_errors(exc)
        else:
            for requested in outcome.runs:
                verb = "Queued" if requested.created else "Already active:"
                messages.success(
                    request, f"{verb} benchmark run #{requested.run.pk} on {requested.run.accelerator}."
                )
            if len(outcome.runs) == 1:
                return redirect(outcome.runs[0].run)
            return redirect(f"{reverse('benchmarks:run-list')}?workload={workload.pk}")
    context = {"workload": workload, "form": form, "options": options, "shrink": shrink}
    return render(
        request, "benchmarks/run_new.html", context, status=400 if request.method == "POST" else 200
    )


@require_GET
@login_required
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(selectors.run_detail_queryset(user=request.user), pk=run_id)
    context = {
        "run": run,
        "rows": selectors.run_candidate_rows(run),
        "can_write": can_write(user=request.user, team=run.workload.team),
    }
    template = "benchmarks/run_detail.html#run-progress" if request.htmx else "benchmarks/run_detail.html"
    return render(request, template, context)


@require_POST
@login_required
def run_cancel(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(selectors.runs_visible_to(user=request.user), pk=run_id)
    run = services.benchmark_run_cancel(run=run, user=request.user)
    if run.status == RunStatus.CANCELLED:
        messages.success(request, f"Cancelled benchmark run #{run.pk}.")
    elif run.cancel_requested and run.is_active:
        messages.success(
            request, f"Asked benchmark run #{run.pk} to stop; its worker stops the engine shortly."
        )
    return redirect(run)


@require_GET
@login_required
def worker_list(request: HtmxHttpRequest) -> HttpResponse:
    hosts = selectors.worker_host_list()
    return render(
        request, "benchmarks/workers.html", {"hosts": hosts, "live_s": settings.BENCHMARK_WORKER_LIVE_S}
    )
