"""The workload document: one validator for the REST API, the pages and the management commands.

Errors name the field with a dotted path (`prompt_tokens.p50`) and say why; unknown keys are refused so a typo
never passes silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog import selectors as catalog
from apps.planner.pipeline.workload import MIN_NONZERO_RATE_PER_S  # the planner's own floor
from apps.workloads.histograms import MAX_TOKENS, last_filled_bin, support
from apps.workloads.models import Workload

HOURS = 24
MAX_RATE_PER_S = 100_000.0
MAX_HISTOGRAM_BINS = 1000
MAX_HISTOGRAM_COUNT = 10**15
# Coefficient of variation of inter-arrival gaps: 0 is perfectly regular, 1 Poisson; real bursty traffic is a
# few. Far above that is a mistake, and a gamma shape of 1/cv² near zero would only slow the simulation.
MAX_BURSTINESS_CV = 100.0
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


class HistogramIn(StrictSerializer):
    """Bin i holds the lengths in [edges[i], edges[i+1]); counts[i] is how many requests fell in it."""

    edges = serializers.ListField(
        child=StrictNumberField(min_value=0, max_value=2 * MAX_TOKENS),
        min_length=2,
        max_length=MAX_HISTOGRAM_BINS + 1,
    )
    counts = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=MAX_HISTOGRAM_COUNT),
        min_length=1,
        max_length=MAX_HISTOGRAM_BINS,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        edges, counts = attrs["edges"], attrs["counts"]
        if len(counts) != len(edges) - 1:
            raise serializers.ValidationError(
                {
                    "counts": [
                        f"Expected {len(edges) - 1} counts, one per bin between the {len(edges)} edges; got {len(counts)}."
                    ]
                }
            )
        for index in range(1, len(edges)):
            if edges[index] <= edges[index - 1]:
                raise serializers.ValidationError(
                    {
                        "edges": [
                            f"Edges must increase: edges[{index}] = {edges[index]:g} is not above edges[{index - 1}] = {edges[index - 1]:g}."
                        ]
                    }
                )
        if not any(counts):
            raise serializers.ValidationError({"counts": ["At least one count must be above zero."]})
        return attrs


class DistributionIn(StrictSerializer):
    mean = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    p50 = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    p95 = StrictNumberField(min_value=1, max_value=MAX_TOKENS)
    max = StrictIntegerField(min_value=1, max_value=MAX_TOKENS)
    histogram = HistogramIn(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self._check_order(attrs)
        if "histogram" in attrs:
            self._check_against_histogram(attrs)
        return attrs

    def _check_against_histogram(self, attrs: dict[str, Any]) -> None:
        """The four figures must come from the histogram beside them (a hand edit of one drops the other)."""
        edges, counts = attrs["histogram"]["edges"], attrs["histogram"]["counts"]
        low, high = last_filled_bin(edges, counts)
        if not low <= attrs["max"] < high:
            raise serializers.ValidationError(
                {
                    "max": [
                        f"max ({attrs['max']}) is outside the histogram's last non-empty bin [{low:g}, {high:g})."
                    ]
                }
            )
        first, last = support(edges, counts)
        for key in ("mean", "p50", "p95"):
            if not first <= attrs[key] <= last:
                raise serializers.ValidationError(
                    {
                        key: [
                            f"{key} ({attrs[key]:g}) is outside the histogram's non-empty bins [{first:g}, {last:g})."
                        ]
                    }
                )

    @staticmethod
    def _check_order(attrs: dict[str, Any]) -> None:
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


def hourly_field(*, child: serializers.Field, required: bool = True) -> serializers.ListField:  # type: ignore[type-arg]
    return serializers.ListField(
        child=child,
        min_length=HOURS,
        max_length=HOURS,
        required=required,
        error_messages={
            "min_length": "Expected 24 hourly values (hour 0..23 UTC), got fewer.",
            "max_length": "Expected 24 hourly values (hour 0..23 UTC), got more.",
        },
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": MAX_BURSTINESS_CV},
            {
                "type": "array",
                "items": {"type": "number", "minimum": 0, "maximum": MAX_BURSTINESS_CV},
                "minItems": HOURS,
                "maxItems": HOURS,
            },
        ]
    }
)
class BurstinessField(serializers.Field):  # type: ignore[type-arg]
    """One coefficient of variation for every hour, or 24 (hour 0..23 UTC)."""

    default_error_messages = {
        "invalid": "Give one coefficient of variation (a number) or a list of 24, hour 0..23 UTC.",
    }

    def to_internal_value(self, data: Any) -> float | list[float]:
        if isinstance(data, list):
            return list(
                hourly_field(
                    child=StrictNumberField(min_value=0, max_value=MAX_BURSTINESS_CV)
                ).run_validation(data)
            )
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(StrictNumberField(min_value=0, max_value=MAX_BURSTINESS_CV).run_validation(data))

    def to_representation(self, value: Any) -> Any:
        return value


class TrafficIn(StrictSerializer):
    hourly_requests_per_s = hourly_field(child=RateField())
    # Optional, from a request log (apps/workloads/logs.py): arrival burstiness, and the curve on weekdays
    # (Monday..Friday, UTC) and on weekends apart.
    burstiness_cv = BurstinessField(required=False)
    weekday_hourly_requests_per_s = hourly_field(child=RateField(), required=False)
    weekend_hourly_requests_per_s = hourly_field(child=RateField(), required=False)

    def validate_hourly_requests_per_s(self, value: list[float]) -> list[float]:
        if not any(rate > 0 for rate in value):
            raise serializers.ValidationError("At least one hour must have traffic above zero.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        pair = ("weekday_hourly_requests_per_s", "weekend_hourly_requests_per_s")
        for present, absent in (pair, pair[::-1]):
            if present in attrs and absent not in attrs:
                raise serializers.ValidationError(
                    {absent: [f"Required with {present}: give both curves or neither."]}
                )
        return attrs


class PrefixIn(StrictSerializer):
    """What an engine's prefix cache can reuse: a prefix every prompt starts with (system prompt, RAG template),
    and, of the rest of a prompt, the fraction an earlier turn of the same conversation already sent."""

    shared_prefix_tokens = StrictIntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
    multi_turn_reuse_fraction = StrictNumberField(min_value=0, max_value=1, default=0.0)


class SloIn(StrictSerializer):
    ttft_p95_ms = StrictNumberField(min_value=1, max_value=600_000)
    itl_p95_ms = StrictNumberField(min_value=0.1, max_value=60_000)


class QualityIn(StrictSerializer):
    allowed_quantizations = serializers.ListField(
        child=StrictStringField(max_length=20), min_length=1, max_length=20
    )

    def validate_allowed_quantizations(self, value: list[str]) -> list[str]:
        return known_quantizations(value)


def known_quantizations(value: list[str]) -> list[str]:
    known = catalog.quantization_slugs()
    unknown = [slug for slug in value if slug not in known]
    if unknown:
        raise serializers.ValidationError(
            f"Unknown quantization {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}."
        )
    return list(dict.fromkeys(value))


def workload_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise serializers.ValidationError("Use 1-100 letters, digits, spaces, dots, dashes or underscores.")
    return value


def known_model(value: str) -> str:
    if value not in catalog.model_slugs():
        raise serializers.ValidationError(
            f"Unknown model {value!r}; known: {', '.join(sorted(catalog.model_slugs()))}."
        )
    return value


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


class CostingIn(StrictSerializer):
    """Overrides of the ownership cost defaults a plan uses to price buying the servers (each default, with its
    source, is in apps/catalog/data/onprem_costs.csv)."""

    amortisation_years = StrictNumberField(min_value=0.5, max_value=20, required=False)
    pue = StrictNumberField(min_value=1.0, max_value=3.0, required=False)
    usd_per_kwh = StrictNumberField(min_value=0.001, max_value=5.0, required=False)
    colocation_usd_per_kw_month = StrictNumberField(min_value=0, max_value=10_000, required=False)


class WorkloadIn(StrictSerializer):
    name = StrictStringField(max_length=100)
    model = StrictStringField(max_length=80)
    traffic = TrafficIn()
    prompt_tokens = DistributionIn()
    output_tokens = DistributionIn()
    slo = SloIn()
    quality = QualityIn()
    constraints = ConstraintsIn(required=False)
    prefix = PrefixIn(required=False)
    costing = CostingIn(required=False)
    # Planning options beside DESIGN.md's keys: spare capacity per hour, operations cost, fleet shape, and how
    # instance-hours are priced (apps/planner/pipeline/workload.py OFFER_PRICING).
    offer_pricing = serializers.ChoiceField(
        choices=[
            ("cheapest_listing", "each instance at its cheapest listing"),
            ("median_market", "each GPU at the median of the market's listings per GPU-hour"),
            ("named_providers", "only the providers in constraints.providers, at their listings"),
        ],
        default="cheapest_listing",
    )
    headroom = StrictNumberField(min_value=0, max_value=2, default=0.2)
    ops_hours_per_month = StrictNumberField(min_value=0, max_value=744, default=10)
    ops_hourly_usd = StrictNumberField(min_value=0, max_value=10_000, default=100)
    scheduled_scaling = StrictBooleanField(default=True)

    def validate_name(self, value: str) -> str:
        return workload_name(value)

    def validate_model(self, value: str) -> str:
        return known_model(value)

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
        prefix = attrs.get("prefix")
        if prefix and prefix["shared_prefix_tokens"] > attrs["prompt_tokens"]["p50"]:
            raise serializers.ValidationError(
                {
                    "prefix": {
                        "shared_prefix_tokens": [
                            f"{prefix['shared_prefix_tokens']} tokens is longer than the median prompt "
                            f"({attrs['prompt_tokens']['p50']:g}); every prompt starts with the shared prefix."
                        ]
                    }
                }
            )
        attrs.setdefault("constraints", ConstraintsIn().to_internal_value({}))
        if attrs.get("offer_pricing") == "named_providers" and not attrs["constraints"].get("providers"):
            raise serializers.ValidationError(
                {
                    "offer_pricing": [
                        "named_providers prices only the providers you name: tick at least one provider."
                    ]
                }
            )
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
            "constraints", "prefix", "costing", "offer_pricing", "headroom", "ops_hours_per_month",
            "ops_hourly_usd", "scheduled_scaling", "import_summary", "created_at", "updated_at",
        ]  # fmt: skip

    headroom = serializers.FloatField(source="planning_options.headroom", read_only=True)
    ops_hours_per_month = serializers.FloatField(
        source="planning_options.ops_hours_per_month", read_only=True
    )
    ops_hourly_usd = serializers.FloatField(source="planning_options.ops_hourly_usd", read_only=True)
    scheduled_scaling = serializers.BooleanField(source="planning_options.scheduled_scaling", read_only=True)
    offer_pricing = serializers.CharField(source="planning_options.offer_pricing", read_only=True)

    costing = serializers.SerializerMethodField()

    def get_traffic(self, obj: Workload) -> dict[str, Any]:
        return obj.traffic

    def get_costing(self, obj: Workload) -> dict[str, float]:
        costing: dict[str, float] = obj.options.get("costing") or {}
        return costing

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


class FiniteFloatField(serializers.FloatField):
    """A number given as text (a query parameter, a form field): NaN and infinities are refused by name."""

    default_error_messages = {"not_finite": "Must be a finite number."}

    def to_internal_value(self, data: Any) -> float:
        value = float(super().to_internal_value(data))
        if not math.isfinite(value):
            self.fail("not_finite")
        return value


class QuantizationListField(serializers.ListField):
    """A list, or one comma-separated string (how a query parameter or a command-line flag gives it)."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, str):
            data = [part.strip() for part in data.split(",") if part.strip()]
        elif isinstance(data, list) and all(isinstance(item, str) for item in data):
            data = [part.strip() for item in data for part in item.split(",") if part.strip()]
        return list(super().to_internal_value(data))


# A request log carries no latency targets or quality bar: a new workload starts from DESIGN.md's example
# workload's (800 ms p95 TTFT, 60 ms p95 ITL, bf16/fp8/awq-int4) and the team edits them.
LOG_IMPORT_DEFAULTS: dict[str, Any] = {
    "ttft_p95_ms": 800.0,
    "itl_p95_ms": 60.0,
    "allowed_quantizations": ["bf16", "fp8", "awq-int4"],
}


class LogImportIn(StrictSerializer):
    """What to make of an uploaded request log, given beside it (query parameters, form fields, flags)."""

    name = StrictStringField(max_length=100)
    model = StrictStringField(max_length=80)
    log_format = serializers.ChoiceField(
        choices=["azure", "openai", "litellm", "plain"],
        required=False,
        allow_blank=True,
        help_text="Detected from the header (CSV) or the first record (JSON Lines) when left out.",
    )
    ttft_p95_ms = FiniteFloatField(min_value=1, max_value=600_000, default=LOG_IMPORT_DEFAULTS["ttft_p95_ms"])
    itl_p95_ms = FiniteFloatField(min_value=0.1, max_value=60_000, default=LOG_IMPORT_DEFAULTS["itl_p95_ms"])
    allowed_quantizations = QuantizationListField(
        child=StrictStringField(max_length=20),
        min_length=1,
        max_length=20,
        default=lambda: list(LOG_IMPORT_DEFAULTS["allowed_quantizations"]),
    )
    shared_prefix_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
    multi_turn_reuse_fraction = FiniteFloatField(min_value=0, max_value=1, required=False)

    def validate_name(self, value: str) -> str:
        return workload_name(value)

    def validate_model(self, value: str) -> str:
        return known_model(value)

    def validate_allowed_quantizations(self, value: list[str]) -> list[str]:
        return known_quantizations(value)


def validate_log_import(data: Any) -> dict[str, Any]:
    serializer = LogImportIn(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
