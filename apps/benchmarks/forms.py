from __future__ import annotations

from typing import Any

from django import forms
from rest_framework import serializers

from advisor.api import flatten_errors
from apps.benchmarks.candidates import Candidate, Verdict
from apps.benchmarks.services import MAX_LEVELS, MAX_REQUESTS_PER_LEVEL, CandidateRequest, LoadSettings

LOAD_MODES = [
    ("concurrency", "Concurrency (closed loop)"),
    ("rate", "Request rate per second (open loop, Poisson)"),
]


class RunRequestForm(forms.Form):
    candidates = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one candidate a live worker can run."},
    )
    load_mode = forms.ChoiceField(choices=LOAD_MODES, initial="concurrency", label="Load")
    levels = forms.CharField(
        initial="1,4,16", help_text="Comma-separated concurrency levels or request rates, one level each"
    )
    requests = forms.IntegerField(
        min_value=1, max_value=MAX_REQUESTS_PER_LEVEL, initial=32, label="Requests per level"
    )
    isl = forms.IntegerField(
        min_value=1, required=False, label="Prompt tokens", help_text="Blank: the workload's distribution"
    )
    osl = forms.IntegerField(
        min_value=1, required=False, label="Output tokens", help_text="Blank: the workload's distribution"
    )
    warmup_requests = forms.IntegerField(min_value=0, max_value=100, initial=2, label="Warm-up requests")
    shrink = forms.BooleanField(
        required=False,
        label="Shrink the model (CPU smoke run)",
        help_text="Tiny layers so a CPU run finishes; recorded as not representative of the full model",
    )

    def __init__(self, *args: Any, runnable: list[Verdict], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["candidates"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(v.candidate.key, v.candidate.label) for v in runnable]

    def clean_levels(self) -> list[float]:
        raw = str(self.cleaned_data["levels"])
        try:
            values = [float(part) for part in raw.replace(" ", "").split(",") if part]
        except ValueError as exc:
            raise forms.ValidationError("Numbers separated by commas, e.g. 1,4,16.") from exc
        if not values or any(v <= 0 for v in values):
            raise forms.ValidationError("At least one level, each above zero.")
        if len(values) > MAX_LEVELS:
            raise forms.ValidationError(f"At most {MAX_LEVELS} levels.")
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        levels = cleaned.get("levels")
        if cleaned.get("load_mode") == "concurrency" and levels and any(not v.is_integer() for v in levels):
            self.add_error("levels", "Concurrency levels are whole numbers.")
        return cleaned

    def to_service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        concurrency = data["load_mode"] == "concurrency"
        levels: list[float] = data["levels"]
        return {
            "candidates": [
                CandidateRequest(engine=c.engine, quant=c.quant, accelerator=c.accelerator, tp=c.tp)
                for c in (Candidate.from_key(key) for key in data["candidates"])
            ],
            "load": LoadSettings(
                concurrency=tuple(int(v) for v in levels) if concurrency else (),
                rates=() if concurrency else tuple(levels),
                requests=data["requests"],
                isl=data.get("isl"),
                osl=data.get("osl"),
                shrink=bool(data.get("shrink")),
                warmup_requests=data["warmup_requests"],
            ),
        }

    def add_service_errors(self, exc: serializers.ValidationError) -> None:
        """The service's rules (an unsupported combination, nothing runnable) shown on the form."""
        for error in flatten_errors(exc.detail):
            name = error["field"].split(".")[0].split("[")[0]
            self.add_error(name if name in self.fields else None, error["message"])
