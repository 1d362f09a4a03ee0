"""The workload form: flat fields for people, turned into the workload document and checked by the same
validator as the API (apps/workloads/serializers.py), whose dotted error paths map back onto these fields."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from rest_framework import serializers

from advisor.api import flatten_errors
from apps.accounts.models import Team
from apps.catalog import selectors as catalog
from apps.workloads.models import Workload
from apps.workloads.serializers import LOG_IMPORT_DEFAULTS, validate_document
from apps.workloads.traffic import TrafficImportError, curve_from_csv

DISTRIBUTION_KEYS = ("mean", "p50", "p95", "max")
# A common, small model first: a new workload should not start on a 70B reasoning model.
DEFAULT_MODEL = "llama-3.1-8b"

# Where each part of the document lives on the form.
DOCUMENT_TO_FIELD = {
    "name": "name",
    "model": "model",
    "traffic.hourly_requests_per_s": "hourly_rates",
    "traffic": "hourly_rates",
    "slo.ttft_p95_ms": "ttft_p95_ms",
    "slo.itl_p95_ms": "itl_p95_ms",
    "quality.allowed_quantizations": "allowed_quantizations",
    "constraints.gpus": "gpus",
    "constraints.providers": "providers",
    "constraints.max_gpus_per_replica": "max_gpus_per_replica",
    "constraints.spot": "spot",
    "constraints.min_replicas": "min_replicas",
    "headroom": "headroom_pct",
    "offer_pricing": "offer_pricing",
    "ops_hours_per_month": "ops_hours_per_month",
    "ops_hourly_usd": "ops_hourly_usd",
    "constraints.engines": "engines",
    "prefix.shared_prefix_tokens": "shared_prefix_tokens",
    "prefix.multi_turn_reuse_fraction": "multi_turn_reuse_pct",
    **{f"{dist}_tokens.{key}": f"{dist}_{key}" for dist in ("prompt", "output") for key in DISTRIBUTION_KEYS},
}


def parse_rates(text: str) -> list[float]:
    parts = [part for part in re.split(r"[\s,;]+", text.strip()) if part]
    try:
        return [float(part) for part in parts]
    except ValueError as exc:
        raise forms.ValidationError("Enter numbers separated by commas or spaces.") from exc


def prefix_from(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The document's prefix object from the two optional fields; empty when neither is filled."""
    prefix: dict[str, Any] = {}
    if cleaned.get("shared_prefix_tokens") is not None:
        prefix["shared_prefix_tokens"] = cleaned["shared_prefix_tokens"]
    if cleaned.get("multi_turn_reuse_pct") is not None:
        prefix["multi_turn_reuse_fraction"] = cleaned["multi_turn_reuse_pct"] / 100
    return prefix


def form_field_for(path: str) -> str | None:
    """Map `prompt_tokens.p50` or `traffic.hourly_requests_per_s[3]` to the form field that shows it."""
    base = re.sub(r"\[\d+\]$", "", path)
    return DOCUMENT_TO_FIELD.get(base)


class WorkloadForm(forms.Form):
    team: forms.ModelChoiceField[Team] = forms.ModelChoiceField(
        queryset=Team.objects.none(), empty_label=None
    )
    name = forms.CharField(max_length=100, help_text="Unique within the team.")
    model = forms.ChoiceField(choices=())
    hourly_rates = forms.CharField(
        label="Requests per second, hour 0..23 UTC",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="24 numbers separated by commas or spaces.",
    )
    traffic_csv = forms.FileField(
        required=False,
        label="…or import a CSV",
        help_text="Request timestamps (one per line) or `hour,requests` counts; replaces the numbers above.",
    )
    prompt_mean = forms.FloatField(label="Prompt mean (tokens)")
    prompt_p50 = forms.FloatField(label="Prompt p50 (tokens)")
    prompt_p95 = forms.FloatField(label="Prompt p95 (tokens)")
    prompt_max = forms.IntegerField(label="Prompt max (tokens)")
    output_mean = forms.FloatField(label="Output mean (tokens)")
    output_p50 = forms.FloatField(label="Output p50 (tokens)")
    output_p95 = forms.FloatField(label="Output p95 (tokens)")
    output_max = forms.IntegerField(label="Output max (tokens)")
    ttft_p95_ms = forms.FloatField(label="p95 time to first token (ms)")
    itl_p95_ms = forms.FloatField(label="p95 inter-token latency (ms per token)")
    allowed_quantizations = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    gpus = forms.MultipleChoiceField(
        choices=(),
        required=False,
        label="GPUs",
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: any GPU.",
    )
    providers = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: any provider.",
    )
    engines = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every engine.",
    )
    offer_pricing = forms.ChoiceField(
        label="Price GPUs at",
        initial="cheapest_listing",
        required=False,  # none chosen: the cheapest listing, as workloads made before the choice are priced
        widget=forms.RadioSelect,
        choices=[
            (
                "cheapest_listing",
                "the cheapest listing (may be a marketplace's, with no word on availability)",
            ),
            ("median_market", "the median market price of each GPU (what most providers charge)"),
            ("named_providers", "the providers ticked above only"),
        ],
    )
    max_gpus_per_replica = forms.IntegerField(
        initial=8, min_value=1, max_value=64, label="Max GPUs per replica"
    )
    min_replicas = forms.IntegerField(
        initial=1,
        min_value=0,
        max_value=1000,
        label="Min replicas (warm standby)",
        help_text="Replicas kept in every hour. 0 lets the fleet scale to zero when there is no traffic "
        "(batch jobs); the first request after an idle hour then waits for a cold start.",
    )
    spot = forms.BooleanField(required=False, label="Use spot prices")
    headroom_pct = forms.FloatField(
        initial=20,
        min_value=0,
        max_value=200,
        label="Headroom (%)",
        help_text="0 to 200% above each hour's rate.",
    )
    ops_hours_per_month = forms.FloatField(
        initial=10, min_value=0, max_value=744, label="Ops hours per month"
    )
    ops_hourly_usd = forms.FloatField(
        initial=100, min_value=0, max_value=10_000, label="Ops hourly rate (USD)"
    )
    shared_prefix_tokens = forms.IntegerField(
        required=False,
        label="Shared prefix (tokens)",
        help_text="Tokens every prompt starts with (system prompt, RAG template). Empty: none.",
    )
    multi_turn_reuse_pct = forms.FloatField(
        required=False,
        label="Multi-turn reuse (%)",
        help_text="Of the rest of a prompt, the share an earlier turn of the conversation already sent.",
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from workers.engines import ENGINES

        choices = {
            "model": [(m.slug, f"{m.name} ({m.params_total_b:g}B)") for m in catalog.model_list()],
            "allowed_quantizations": [(q.slug, q.name) for q in catalog.quantization_list()],
            "gpus": [(g.slug, g.name) for g in catalog.gpu_list()],
            "providers": [(p, p) for p in sorted(catalog.offer_providers())],
            "engines": [(e.name, e.display_name) for e in ENGINES.values()],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ModelChoiceField)
        team_field.queryset = teams
        if (
            not self.is_bound
            and "model" not in self.initial
            and any(slug == DEFAULT_MODEL for slug, _ in choices["model"])
        ):
            self.initial["model"] = DEFAULT_MODEL
        self.document: dict[str, Any] | None = None

    @classmethod
    def initial_from(cls, workload: Workload) -> dict[str, Any]:
        document = workload.to_document()
        constraints = document["constraints"]
        initial: dict[str, Any] = {
            "team": workload.team_id,
            "name": document["name"],
            "model": document["model"],
            "hourly_rates": ", ".join(
                f"{rate:.15g}" for rate in document["traffic"]["hourly_requests_per_s"]
            ),
            "ttft_p95_ms": document["slo"]["ttft_p95_ms"],
            "itl_p95_ms": document["slo"]["itl_p95_ms"],
            "allowed_quantizations": document["quality"]["allowed_quantizations"],
            "gpus": constraints.get("gpus", []),
            "providers": constraints.get("providers", []),
            "max_gpus_per_replica": constraints.get("max_gpus_per_replica", 8),
            "min_replicas": constraints.get("min_replicas", 1),
            "spot": constraints.get("spot", False),
            "engines": constraints.get("engines", []),
            "headroom_pct": round(document.get("headroom", 0.2) * 100, 2),
            "offer_pricing": document.get("offer_pricing", "cheapest_listing"),
            "ops_hours_per_month": document.get("ops_hours_per_month", 10),
            "ops_hourly_usd": document.get("ops_hourly_usd", 100),
        }
        for dist in ("prompt", "output"):
            for key in DISTRIBUTION_KEYS:
                initial[f"{dist}_{key}"] = document[f"{dist}_tokens"][key]
        prefix = document.get("prefix") or {}
        if prefix:
            initial["shared_prefix_tokens"] = prefix.get("shared_prefix_tokens", 0)
            initial["multi_turn_reuse_pct"] = round(prefix.get("multi_turn_reuse_fraction", 0) * 100, 2)
        return initial

    def clean_offer_pricing(self) -> str:
        return str(self.cleaned_data.get("offer_pricing") or "cheapest_listing")

    def clean_hourly_rates(self) -> list[float]:
        return parse_rates(self.cleaned_data["hourly_rates"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("traffic_csv")
        if upload:
            # The CSV replaces the numbers: an empty box is not an error beside it, whatever the CSV holds.
            self.errors.pop("hourly_rates", None)
            try:
                cleaned["hourly_rates"] = curve_from_csv(upload)
            except TrafficImportError as exc:
                self.add_error("traffic_csv", str(exc))
                return cleaned
        # Validate what parsed even when other fields are missing or wrong: inline validation shows a rule
        # broken by a filled field while the rest of the form is still empty. A field that already has a form
        # error keeps it (the document rule would only repeat "required").
        try:
            self.document = validate_document(self.to_document(cleaned))
        except serializers.ValidationError as exc:
            self.add_document_errors(exc, skip=set(self.errors))
        return cleaned

    def to_document(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The workload document from the fields that parsed; missing ones are left out."""

        def pick(**paths: str) -> dict[str, Any]:
            return {key: cleaned[field] for key, field in paths.items() if cleaned.get(field) is not None}

        document: dict[str, Any] = pick(name="name", model="model")
        if cleaned.get("hourly_rates") is not None:
            document["traffic"] = {"hourly_requests_per_s": cleaned["hourly_rates"]}
        for dist in ("prompt", "output"):
            document[f"{dist}_tokens"] = pick(**{key: f"{dist}_{key}" for key in DISTRIBUTION_KEYS})
        document["slo"] = pick(ttft_p95_ms="ttft_p95_ms", itl_p95_ms="itl_p95_ms")
        document["quality"] = {"allowed_quantizations": list(cleaned.get("allowed_quantizations") or [])}
        document["constraints"] = {
            "gpus": list(cleaned.get("gpus") or []),
            "providers": list(cleaned.get("providers") or []),
            "spot": bool(cleaned.get("spot")),
            "engines": list(cleaned.get("engines") or []),
            **pick(max_gpus_per_replica="max_gpus_per_replica", min_replicas="min_replicas"),
        }
        document.update(
            pick(
                ops_hours_per_month="ops_hours_per_month",
                ops_hourly_usd="ops_hourly_usd",
                offer_pricing="offer_pricing",
            )
        )
        if cleaned.get("headroom_pct") is not None:
            document["headroom"] = cleaned["headroom_pct"] / 100
        prefix = prefix_from(cleaned)
        if prefix:
            document["prefix"] = prefix
        return document

    def add_document_errors(self, exc: serializers.ValidationError, skip: set[str] | None = None) -> None:
        """The document's errors on the fields that show them; one message per rule, naming every hour that
        breaks it (not 24 copies of one message)."""
        hours: dict[tuple[str | None, str], list[int]] = {}
        for error in flatten_errors(exc.detail):
            field = form_field_for(error["field"])
            if skip and field in skip:
                continue
            target = field if field is not None and field in self.fields else None
            message = error["message"] if target else f"{error['field']}: {error['message']}"
            index = re.search(r"\[(\d+)\]$", error["field"])
            hours.setdefault((target, message), [])
            if index:
                hours[(target, message)].append(int(index.group(1)))
        for (target, message), indices in hours.items():
            if len(indices) == 1:
                message = f"Hour {indices[0]}: {message}"
            elif indices:
                message = f"Hours {_hour_list(indices)}: {message}"
            self.add_error(target, message)


def _hour_list(hours: list[int]) -> str:
    """[0, 1, 2, 3, 7] → '0–3, 7'."""
    spans: list[list[int]] = []
    for hour in sorted(hours):
        if spans and hour == spans[-1][1] + 1:
            spans[-1][1] = hour
        else:
            spans.append([hour, hour])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)


class LogImportForm(forms.Form):
    """A request log to turn into a new workload. The team is in the page's URL, not here: the role is checked
    before the upload is read (apps/workloads/uploads.py)."""

    log_file = forms.FileField(
        label="Request log",
        help_text="CSV or JSON Lines with a timestamp and prompt and output token counts per request.",
    )
    log_format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[
            ("", "Detect from the file"),
            ("azure", "Azure LLM inference trace (TIMESTAMP, ContextTokens, GeneratedTokens)"),
            ("openai", "OpenAI usage records (created, usage.prompt_tokens, usage.completion_tokens)"),
            ("litellm", "LiteLLM spend logs (startTime, prompt_tokens, completion_tokens)"),
            ("plain", "Plain (timestamp, input_tokens, output_tokens)"),
        ],
    )
    name = forms.CharField(max_length=100, help_text="Unique within the team.")
    model = forms.ChoiceField(choices=(), help_text="Requests longer than its context are skipped.")
    ttft_p95_ms = forms.FloatField(
        label="p95 time to first token (ms)", initial=LOG_IMPORT_DEFAULTS["ttft_p95_ms"]
    )
    itl_p95_ms = forms.FloatField(
        label="p95 inter-token latency (ms per token)", initial=LOG_IMPORT_DEFAULTS["itl_p95_ms"]
    )
    allowed_quantizations = forms.MultipleChoiceField(
        choices=(), widget=forms.CheckboxSelectMultiple, initial=LOG_IMPORT_DEFAULTS["allowed_quantizations"]
    )
    shared_prefix_tokens = WorkloadForm.base_fields["shared_prefix_tokens"]
    multi_turn_reuse_pct = WorkloadForm.base_fields["multi_turn_reuse_pct"]

    # Where the service's errors (LogImportIn's field names) show on this form.
    OPTION_TO_FIELD = {"multi_turn_reuse_fraction": "multi_turn_reuse_pct", "file": "log_file"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_field, quant_field = self.fields["model"], self.fields["allowed_quantizations"]
        assert isinstance(model_field, forms.ChoiceField)
        assert isinstance(quant_field, forms.ChoiceField)
        model_field.choices = [(m.slug, f"{m.name} ({m.params_total_b:g}B)") for m in catalog.model_list()]
        quant_field.choices = [(q.slug, q.name) for q in catalog.quantization_list()]
        if not self.is_bound and any(slug == DEFAULT_MODEL for slug, _ in model_field.choices):
            self.initial.setdefault("model", DEFAULT_MODEL)

    def options(self) -> dict[str, Any]:
        """The service's options (LogImportIn) from the cleaned fields."""
        cleaned = self.cleaned_data
        options = {
            key: cleaned[key]
            for key in ("name", "model", "log_format", "ttft_p95_ms", "itl_p95_ms", "allowed_quantizations")
        }
        options.update(prefix_from(cleaned))
        return options

    def add_service_errors(self, exc: serializers.ValidationError) -> None:
        for error in flatten_errors(exc.detail):
            field = self.OPTION_TO_FIELD.get(error["field"], error["field"])
            self.add_error(field if field in self.fields else None, error["message"])
