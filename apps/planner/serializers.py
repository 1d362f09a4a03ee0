from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.planner.models import Recommendation


class RecommendationSummaryOut(serializers.ModelSerializer[Recommendation]):
    workload = serializers.IntegerField(source="workload_id", read_only=True)
    workload_name = serializers.CharField(source="workload.name", read_only=True)
    best = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Recommendation
        fields = [
            "id", "url", "workload", "workload_name", "status", "error", "catalog_version", "measured_points",
            "best", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_best(self, obj: Recommendation) -> dict[str, Any] | None:
        best = obj.best_option
        if not best:
            return None
        keys = ("engine", "quant", "gpu", "tp", "provider", "instance_type", "monthly_cost_usd", "source")
        return {key: best.get(key) for key in keys}

    def get_url(self, obj: Recommendation) -> str:
        return f"/api/v1/recommendations/{obj.pk}/"


class RecommendationOut(RecommendationSummaryOut):
    manifests_url = serializers.SerializerMethodField()

    class Meta(RecommendationSummaryOut.Meta):
        fields = [*RecommendationSummaryOut.Meta.fields, "inputs", "result", "manifests_url"]

    def get_manifests_url(self, obj: Recommendation) -> str | None:
        return f"/api/v1/recommendations/{obj.pk}/manifests.zip" if obj.options else None
