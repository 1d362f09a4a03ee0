from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.workloads.models import Workload


class PlanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Recommendation(models.Model):
    """One planning of a workload. The inputs, catalog version and measured points it used are kept with the
    result, so the plan can be reproduced and explained after the workload or the catalog change."""

    workload = models.ForeignKey(Workload, on_delete=models.CASCADE, related_name="recommendations")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=PlanStatus.choices, default=PlanStatus.QUEUED)
    inputs = models.JSONField(help_text="The workload document as planned")
    catalog_version = models.CharField(max_length=40, blank=True)
    measured_points = models.PositiveIntegerField(default=0, help_text="Measurements available to the model")
    result = models.JSONField(null=True, blank=True)
    # The best option's headline (engine, GPU, cost, evidence), so lists and dashboards never load whole plans.
    best_option = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The planner stage running now (apps.planner.pipeline.plan.STAGES, or "suggest"): progress for the page.
    progress = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when beat sent the task again because the first message looked lost (see recommendations_reap_stuck).
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workload", "-created_at"]),
            models.Index(fields=["status", "created_at"], name="plan_status_created"),
        ]

    def __str__(self) -> str:
        return f"Plan #{self.pk} for {self.workload}"

    def get_absolute_url(self) -> str:
        return reverse("planner:detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in (PlanStatus.SUCCEEDED, PlanStatus.FAILED)

    @property
    def options(self) -> list[dict[str, Any]]:
        return list((self.result or {}).get("options", []))

    def option(self, rank: int) -> dict[str, Any]:
        for option in self.options:
            if option.get("rank") == rank:
                return option
        raise KeyError(rank)
