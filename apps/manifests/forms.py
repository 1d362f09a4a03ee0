from __future__ import annotations

from typing import Any

from django import forms

from apps.manifests.services import BundleChoices


class BundleChoicesForm(forms.Form):
    """The operator's choices for a bundle, from query parameters (pages and API alike)."""

    option = forms.IntegerField(min_value=1, required=False, initial=1)
    autoscaler = forms.ChoiceField(
        choices=[("keda", "KEDA (queue depth + scheduled cron)"), ("hpa", "HPA (prometheus-adapter)")],
        required=False,
        initial="keda",
    )
    overflow = forms.ChoiceField(
        choices=[("none", "No overflow"), ("cheapest", "Overflow to the cheapest hosted alternative")],
        required=False,
        initial="none",
    )
    mixed = forms.IntegerField(
        min_value=0,
        required=False,
        help_text="The plan's mixed fleet N (0 the cheapest) instead of a single option",
    )
    target = forms.ChoiceField(
        choices=[
            ("all", "Docker Compose and Kubernetes"),
            ("compose", "Docker Compose only"),
            ("kubernetes", "Kubernetes only"),
        ],
        required=False,
        initial="all",
    )
    namespace = forms.RegexField(
        r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        required=False,
        initial="llm",
        error_messages={
            "invalid": "A Kubernetes namespace: lowercase letters, digits and dashes, 1-63 long."
        },
    )

    def choices(self, *, rank: int | None = None) -> BundleChoices:
        data: dict[str, Any] = self.cleaned_data
        return BundleChoices(
            rank=rank or data.get("option") or 1,
            use_keda=(data.get("autoscaler") or "keda") == "keda",
            overflow=(data.get("overflow") or "none") == "cheapest",
            namespace=data.get("namespace") or "llm",
            target=data.get("target") or "all",
            mixed=data.get("mixed"),
        )
