from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.accounts.models import Team
from apps.catalog.models import ModelArchitecture

# Planning options beside DESIGN.md's keys, with the defaults the validator fills in.
DEFAULT_OPTIONS = {
    "headroom": 0.2,
    "ops_hours_per_month": 10.0,
    "ops_hourly_usd": 100.0,
    "scheduled_scaling": True,
    "offer_pricing": "cheapest_listing",
}


class Workload(models.Model):
    """What DESIGN.md's workload file holds. `to_document()` gives that file back."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="workloads")
    name = models.CharField(max_length=100)
    model = models.ForeignKey(ModelArchitecture, on_delete=models.PROTECT, related_name="workloads")
    hourly_requests_per_s = models.JSONField(help_text="24 request rates, hour 0..23 UTC")
    traffic_profile = models.JSONField(
        default=dict,
        blank=True,
        help_text="The rest of the document's traffic object: burstiness_cv, weekday_/weekend_hourly_requests_per_s",
    )
    prompt_tokens = models.JSONField(help_text="{mean, p50, p95, max[, histogram: {edges, counts}]}")
    output_tokens = models.JSONField(help_text="{mean, p50, p95, max[, histogram: {edges, counts}]}")
    prefix = models.JSONField(
        default=dict, blank=True, help_text="{shared_prefix_tokens, multi_turn_reuse_fraction}, or empty"
    )
    ttft_p95_ms = models.FloatField()
    itl_p95_ms = models.FloatField()
    allowed_quantizations = models.JSONField()
    constraints = models.JSONField(default=dict)
    options = models.JSONField(
        default=dict, blank=True, help_text="headroom, ops_hours_per_month, ops_hourly_usd, scheduled_scaling"
    )
    import_summary = models.JSONField(
        default=dict, blank=True, help_text="What a request-log import read and skipped; empty when typed in"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_workload_name_per_team")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("workloads:detail", args=[self.pk])

    @property
    def peak_requests_per_s(self) -> float:
        return float(max(self.hourly_requests_per_s))

    @property
    def daily_requests(self) -> float:
        return float(sum(rate * 3600 for rate in self.hourly_requests_per_s))

    def to_document(self) -> dict[str, Any]:
        document = {
            "name": self.name,
            "model": self.model.slug,
            "traffic": self.traffic,
            "prompt_tokens": dict(self.prompt_tokens),
            "output_tokens": dict(self.output_tokens),
            "slo": {"ttft_p95_ms": self.ttft_p95_ms, "itl_p95_ms": self.itl_p95_ms},
            "quality": {"allowed_quantizations": list(self.allowed_quantizations)},
            "constraints": dict(self.constraints),
            **self.planning_options,
        }
        if self.prefix:
            document["prefix"] = dict(self.prefix)
        return document

    @property
    def traffic(self) -> dict[str, Any]:
        return {"hourly_requests_per_s": list(self.hourly_requests_per_s), **self.traffic_profile}

    @property
    def planning_options(self) -> dict[str, Any]:
        return {**DEFAULT_OPTIONS, **self.options}
