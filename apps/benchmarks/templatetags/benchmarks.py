from __future__ import annotations

from typing import Any

from django import template

from apps.benchmarks.selectors import measured_against_predicted, workload_recent_runs
from apps.workloads.models import Workload

register = template.Library()


@register.inclusion_tag("benchmarks/_workload_runs.html")
def workload_benchmarks(workload: Workload) -> dict[str, Any]:
    """Recent runs on the workload page; its view has already checked the user may see this workload."""
    return {
        "workload": workload,
        "runs": workload_recent_runs(workload=workload),
        "comparisons": measured_against_predicted(workload=workload),
    }


@register.filter
def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


@register.filter
def signed_pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.0f}%"
