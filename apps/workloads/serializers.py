"""The workload document: one validator for the REST API, the pages and the management commands.

Errors name the field with a dotted path (`prompt_tokens.p50`) and say why; unknown keys are refused so a typo
never passes silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

from rest_framework import serializers

from apps.catalog import selectors as catalog
from apps.workloads.models import Workload

HOURS = 24
MAX_RATE_PER_S = 100_000.0
# Below this a rate is noise, not traffic: 5e-324 req/s is positive, yet the tokens it makes per month round to
# nothing and the cost per token overflows to Infinity. An hour either has no traffic (0) or at least this much.
MIN_NONZERO_RATE_PER_S = 1e-4
MAX_TOKENS = 10_000_000
MAX_EXACT_INT = 2**53  # every integer up to here converts to float exactly
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$"


class StrictNumberField(serializers.FloatField):
    """A JSON number: refuses booleans, strings, NaN and infinities (JSON allows none of them as numbers)."""

    default_error_messages = {
        "invalid": "A number is required.",
        "not_finite": "Must be a finite number (got {value}).",
        "out_of_range": "Out of range: an integer of {digits} digits.",
    }

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        # Bounded before any float conversion: float() of a 400-digit integer raises OverflowError.
        if isinstance(data, int) and abs(data) > MAX_EXACT_INT:
            self.fail("out_of_range", digits=len(str(abs(data))))
        if not math.isfinite(data):
            self.fail("not_finite", value=data)
        return float(super().to_internal_value(data))


class RateField(StrictNumberField):
    """Requests per second in one hour: 0, or between MIN_NONZERO_RATE_PER_S and MAX_RATE_PER_S."""

    default_error_messages = {
        "too_small": (
            f"Must be 0 (no traffic) or at least {MIN_NONZERO_RATE_PER_S:g} requests/s "
            f"(one request every {1 / MIN_NONZERO_RATE_PER_S / 3600:.1f} hours); got {{value}}."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=MAX_RATE_PER_S, **kwargs)

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if 0 < value < MIN_NONZERO_RATE_PER_S:
            self.fail("too_small", value=repr(value))
        return value


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "An integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return int(super().to_internal_value(int(data)))


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictStringField(serializers.CharField):
    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses keys it does not know."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Must be a JSON object."]}, code="invalid"
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {key: ["Unknown field."] for key in unknown}, code="unknown_field"
            )
        return super().to_internal_value(data)


class DistributionIn(StrictSerializer):
    mean = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    p50 = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    p95 = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    max = StrictIntegerField(min_value=1, max_value=MAX_TOKENS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["p50"] > attrs["p95"]:
            raise serializers.ValidationError(
                {"p50": [f"p50 ({attrs['p50']:g}) is above p95 ({attrs['p95']:g})."]}
            )
        if attrs["p95"] > attrs["max"]:
            raise serializers.ValidationError(
                {"max": [f"max ({attrs['max']}) is below p95 ({attrs['p95']:g})."]}
            )
        if attrs["mean"] > attrs["max"]:
            raise serializers.ValidationError(
                {"max": [f"max ({attrs['max']}) is below the mean ({attrs['mean']:g})."]}
            )
        return attrs


class TrafficIn(StrictSerializer):
    hourly_requests_per_s = serializers.ListField(
        child=RateField(),
        min_length=HOURS,
        max_length=HOURS,
        error_messages={
            "min_length": "Expected 24 hourly values (hour 0..23 UTC), got fewer.",
            "max_length": "Expected 24 hourly values (hour 0..23 UTC), got more.",
        },
    )

    def validate_hourly_requests_per_s(self, value: list[float]) -> list[float]:
        if not any(rate > 0 for rate in value):
            raise serializers.ValidationError("At least one hour must have traffic above zero.")
        return value


class SloIn(StrictSerializer):
    ttft_p95_ms = StrictNumberField(min_value=1, max_value=600_000)
    itl_p95_ms = StrictNumberField(min_value=0.1, max_value=60_000)


class QualityIn(StrictSerializer):
    allowed_quantizations = serializers.ListField(
        child=StrictStringField(max_length=20), min_length=1, max_length=20
    )

    def validate_allowed_quantizations(self, value: list[str]) -> list[str]:
        known = catalog.quantization_slugs()
        unknown = [slug for slug in value if slug not in known]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown quantization {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}."
            )
        return list(dict.fromkeys(value))


class ConstraintsIn(StrictSerializer):
    gpus = serializers.ListField(child=StrictStringField(max_length=40), max_length=50, default=list)
    providers = serializers.ListField(child=StrictStringField(max_length=60), max_length=50, default=list)
    max_gpus_per_replica = StrictIntegerField(min_value=1, max_value=64, default=8)
    spot = StrictBooleanField(default=False)
    min_replicas = StrictIntegerField(min_value=0, max_value=1000, default=1)
    engines = serializers.ListField(child=StrictStringField(max_length=20), max_length=10, default=list)

    def validate_gpus(self, value: list[str]) -> list[str]:
        known = catalog.gpu_slugs()
        unknown = [slug for slug in value if slug not in known]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown GPU {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}."
            )
        return value

    def validate_providers(self, value: list[str]) -> list[str]:
        known = catalog.offer_providers()
        lowered = [provider.lower() for provider in value]
        unknown = [provider for provider in lowered if provider not in known]
        if unknown:
            raise serializers.ValidationError(
                f"No offers from {', '.join(map(repr, unknown))}; providers with offers: {', '.join(sorted(known))}."
            )
        return lowered

    def validate_engines(self, value: list[str]) -> list[str]:
        from workers.engines import ENGINE_NAMES

        unknown = [name for name in value if name not in ENGINE_NAMES]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown engine {', '.join(map(repr, unknown))}; known: {', '.join(ENGINE_NAMES)}."
            )
        return value


class WorkloadIn(StrictSerializer):
    name = StrictStringField(max_length=100)
    model = StrictStringField(max_length=80)
    traffic = TrafficIn()
    prompt_tokens = DistributionIn()
    output_tokens = DistributionIn()
    slo = SloIn()
    quality = QualityIn()
    constraints = ConstraintsIn(required=False)
    # Planning options beside DESIGN.md's keys: spare capacity per hour, operations cost, fleet shape.
    headroom = StrictNumberField(min_value=0, max_value=2, default=0.2)
    ops_hours_per_month = StrictNumberField(min_value=0, max_value=744, default=10)
    ops_hourly_usd = StrictNumberField(min_value=0, max_value=10_000, default=100)
    scheduled_scaling = StrictBooleanField(default=True)

    def validate_name(self, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise serializers.ValidationError(
                "Use 1-100 letters, digits, spaces, dots, dashes or underscores."
            )
        return value

    def validate_model(self, value: str) -> str:
        if value not in catalog.model_slugs():
            raise serializers.ValidationError(
                f"Unknown model {value!r}; known: {', '.join(sorted(catalog.model_slugs()))}."
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from apps.catalog.models import ModelArchitecture

        context = ModelArchitecture.objects.get(slug=attrs["model"]).max_context
        needed = attrs["prompt_tokens"]["max"] + attrs["output_tokens"]["max"]
        if needed > context:
            raise serializers.ValidationError(
                {
                    "prompt_tokens": {
                        "max": [
                            f"prompt max + output max = {needed} tokens exceeds {attrs['model']}'s context "
                            f"of {context} tokens."
                        ]
                    }
                }
            )
        attrs.setdefault("constraints", ConstraintsIn().to_internal_value({}))
        return attrs


class WorkloadOut(serializers.ModelSerializer[Workload]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    traffic = serializers.SerializerMethodField()
    slo = serializers.SerializerMethodField()
    quality = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Workload
        fields = [
            "id", "url", "team", "name", "model", "traffic", "prompt_tokens", "output_tokens", "slo", "quality",
            "constraints", "headroom", "ops_hours_per_month", "ops_hourly_usd", "scheduled_scaling",
            "created_at", "updated_at",
        ]  # fmt: skip

    headroom = serializers.FloatField(source="planning_options.headroom", read_only=True)
    ops_hours_per_month = serializers.FloatField(
        source="planning_options.ops_hours_per_month", read_only=True
    )
    ops_hourly_usd = serializers.FloatField(source="planning_options.ops_hourly_usd", read_only=True)
    scheduled_scaling = serializers.BooleanField(source="planning_options.scheduled_scaling", read_only=True)

    def get_traffic(self, obj: Workload) -> dict[str, list[float]]:
        return {"hourly_requests_per_s": obj.hourly_requests_per_s}

    def get_slo(self, obj: Workload) -> dict[str, float]:
        return {"ttft_p95_ms": obj.ttft_p95_ms, "itl_p95_ms": obj.itl_p95_ms}

    def get_quality(self, obj: Workload) -> dict[str, list[str]]:
        return {"allowed_quantizations": obj.allowed_quantizations}

    def get_url(self, obj: Workload) -> str:
        return f"/api/v1/workloads/{obj.pk}/"


class WorkloadCreateIn(WorkloadIn):
    team = StrictStringField(
        max_length=100,
        required=False,
        help_text="Team slug; optional when you can write to exactly one team.",
    )


def validate_document(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate a workload document; raises serializers.ValidationError with dotted field names."""
    serializer = WorkloadIn(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
