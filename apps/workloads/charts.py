"""Plotly-ready figure dicts for workload pages (plain data, testable without a browser)."""

from __future__ import annotations

from typing import Any


def traffic_figure(hourly_requests_per_s: list[float]) -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "bar",
                "name": "requests/s",
                "x": list(range(24)),
                "y": list(hourly_requests_per_s),
                "marker": {"color": "#0a58ca"},
                "hovertemplate": "hour %{x}:00 UTC<br>%{y:.3g} requests/s<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": "Traffic by hour (UTC)"},
            "xaxis": {"title": {"text": "hour of day (UTC)"}, "dtick": 2},
            "yaxis": {"title": {"text": "requests per second"}, "rangemode": "tozero"},
            "margin": {"t": 40, "r": 10, "b": 50, "l": 60},
            "height": 300,
        },
    }
