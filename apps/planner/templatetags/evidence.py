"""Badges that say where a figure comes from: measured (where, when) or predicted (by what, with what error)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.planner.templatetags import units

register = template.Library()


@register.simple_tag
def evidence_badge(item: dict[str, Any]) -> SafeString:
    source = item.get("source", "predicted")
    if source == "measured":
        detail = item.get("calibration_basis") or item.get("basis") or "measured on attached hardware"
        return format_html('<span class="badge measured" title="{}">measured</span>', detail)
    band = item.get("error_band") or {}
    key = item.get("calibration_key", "")
    if isinstance(band.get("median_ape"), int | float):
        label = f"predicted ±{band['median_ape']:.0%}"
        title = (
            f"Predicted by the performance model ({key}). Leave-one-source-out error of its group "
            f"({band.get('group', '?')}): ±{band['median_ape']:.0%} typical, {band.get('p90_ape', 0):.0%} at p90, "
            f"from {band.get('rows', 0)} published rows."
        )
        evidence = item.get("evidence") or {}
        if evidence:
            title += " Rows behind it: " + ", ".join(f"{k} {v}" for k, v in evidence.items()) + "."
    else:  # plans made before error bands were cross-validated
        legacy = item.get("error_band_rel")
        # The p90 error: say so, beside pages that show the typical (median) one.
        label = f"predicted ±{legacy:.0%} (p90)" if isinstance(legacy, int | float) else "predicted"
        title = f"Predicted by the performance model ({key})"
    return format_html('<span class="badge predicted" title="{}">{}</span>', title, label)


# One dollar format on every page: templates that load only this library get the units one.
register.filter("usd", units.usd)


@register.filter
def replica_range(replicas_by_hour: Any) -> str:
    """'2–5' for a schedule, '3' when the fleet never changes."""
    try:
        low, high = min(replicas_by_hour), max(replicas_by_hour)
    except (TypeError, ValueError):
        return "—"
    return str(low) if low == high else f"{low}–{high}"


@register.filter
def standing_label(option: dict[str, Any]) -> str:
    """'1', or '=2' when the option is tied with others within the error bands."""
    standing = option.get("standing", option.get("rank"))
    return f"={standing}" if option.get("tied_with") else str(standing)
