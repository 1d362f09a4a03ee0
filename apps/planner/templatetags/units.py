"""Numbers with their units, formatted one way on every page (thousands separated, prices to the cent where
cents matter), and the glossary's tooltips."""

from __future__ import annotations

import math
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import slugify

from apps.planner.glossary import lookup

register = template.Library()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def num(value: Any, digits: int = 0) -> str:
    """1234567.8 → '1,234,568'; num:2 → '1,234,567.80'; '—' for nothing."""
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:,.{int(digits)}f}"


@register.filter
def sig(value: Any, digits: int = 3) -> str:
    """Significant digits with separators, no trailing zeros: 0.0123 → '0.0123', 17.92 → '17.9', 6.30 → '6.3',
    27939 → '27,939'."""
    number = _number(value)
    if number is None:
        return "—"
    if number == 0:
        return "0"
    places = max(0, int(digits) - 1 - math.floor(math.log10(abs(number))))
    text = f"{round(number, places):,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def usd(value: Any) -> str:
    """Whole dollars from $100 up ('$1,656'), cents below ('$1.68'); '—' for nothing."""
    number = _number(value)
    if number is None:
        return "—"
    return f"${number:,.0f}" if abs(number) >= 100 else f"${number:,.2f}"


@register.filter
def usd_cents(value: Any) -> str:
    """Prices to the cent ('$1.68', '$98.32'), never rounded to whole dollars; below ten cents to a tenth of a
    cent ('$0.035'), where a cent is a large share of the price."""
    number = _number(value)
    if number is None:
        return "—"
    return f"${number:,.3f}" if 0 < abs(number) < 0.1 else f"${number:,.2f}"


@register.filter
def change_value(value: Any) -> str:
    """A value of a suggested change as a person writes it: lists joined, numbers without '.0', yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, int | float):
        return sig(value, 4)
    return "—" if value is None else str(value)


@register.filter
def million_tokens(value: Any) -> str:
    """A volume given in millions of tokens: '27,939 M' below a billion, '27.9 billion' from there."""
    number = _number(value)
    if number is None:
        return "—"
    if abs(number) >= 1000:
        return f"{number / 1000:,.1f} billion"
    return f"{number:,.0f} million" if abs(number) >= 10 else f"{number:,.2f} million"


@register.filter
def percent(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage: 0.094 → '9%'."""
    number = _number(value)
    return "—" if number is None else f"{number * 100:,.{int(digits)}f}%"


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """mapping[key] in a template, for keys with spaces ('same model')."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


PRICING_LABELS = {
    "cheapest_listing": "cheapest listing",
    "median_market": "median market price",
    "named_providers": "named providers only",
}


@register.filter
def pricing_label(value: Any) -> str:
    return PRICING_LABELS.get(str(value or "cheapest_listing"), str(value))


@register.simple_tag
def term(key: str, text: str = "") -> SafeString:
    """The term as written (or `text`), with its glossary meaning as a tooltip that keyboard focus shows too,
    linked to the glossary page."""
    entry = lookup(key)
    shown = text or (entry.label if entry else key)
    if entry is None:
        return format_html("{}", shown)
    anchor = reverse("glossary") + "#term-" + slugify(entry.label)
    return format_html(
        '<a class="term" href="{}" data-term="{}" aria-label="{}: {}">{}<span class="tip" role="tooltip">'
        "<strong>{}</strong> ({}): {}</span></a>",
        anchor,
        entry.label,
        shown,
        entry.meaning,
        shown,
        entry.label,
        entry.name,
        entry.meaning,
    )
