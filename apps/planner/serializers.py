from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.planner.models import Recommendation
from apps.workloads.serializers import FiniteFloatField


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


class WhatIfQuery(serializers.Serializer[Any]):
    """The what-if panel's values: traffic and GPU prices as multiples of the plan's, latency targets in ms."""

    traffic_scale = FiniteFloatField(min_value=0.05, max_value=20, default=1.0)
    price_scale = FiniteFloatField(min_value=0.1, max_value=10, default=1.0)
    ttft_p95_ms = FiniteFloatField(min_value=1, max_value=600_000, required=False)
    itl_p95_ms = FiniteFloatField(min_value=0.1, max_value=60_000, required=False)


class OptionRefField(serializers.CharField):
    """`<plan id>:<option rank>`, e.g. 12:2."""

    default_error_messages = {"invalid_ref": "Give a plan id and an option rank as PLAN:RANK, e.g. 12:2."}

    def to_internal_value(self, data: Any) -> tuple[int, int]:  # type: ignore[override]
        text = str(super().to_internal_value(data))
        plan_id, sep, rank = text.partition(":")
        if not (sep and plan_id.isdigit() and rank.isdigit()) or len(text) > 24:
            self.fail("invalid_ref")
        return int(plan_id), int(rank)


class CompareQuery(serializers.Serializer[Any]):
    """Plans (their best options) and options to put side by side: two at least, eight at most."""

    plan = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62), default=list, max_length=8
    )
    option = serializers.ListField(child=OptionRefField(max_length=24), default=list, max_length=8)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        count = len(attrs["plan"]) + len(attrs["option"])
        if count < 2:
            raise serializers.ValidationError(
                {"plan": ["Pick at least two plans or options to compare (plan=ID, option=PLAN:RANK)."]}
            )
        if count > 8:
            raise serializers.ValidationError({"plan": ["Compare at most eight at once."]})
        return attrs
