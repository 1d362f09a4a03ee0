from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.accounts.models import Membership
from apps.accounts.selectors import teams_writable_by
from apps.benchmarks.selectors import runs_visible_to
from apps.planner.selectors import recommendation_list
from apps.workloads.selectors import workload_list


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The team overview: memberships, recent workloads, benchmark runs and plans."""
    context = {
        "memberships": Membership.objects.filter(user_id=request.user.pk or 0).select_related("team"),
        "workloads": workload_list(user=request.user)[:10],
        "recommendations": recommendation_list(user=request.user)[:10],
        "runs": runs_visible_to(user=request.user).order_by("-created_at")[:10],
        "can_create": teams_writable_by(user=request.user).exists(),
    }
    return render(request, "accounts/dashboard.html", context)
