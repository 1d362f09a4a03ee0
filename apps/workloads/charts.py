"""Plotly-ready figure dicts for workload pages (plain data, testable without a browser)."""

from __future__ import annotations

from typing import Any


def traffic_figure(
    hourly_requests_per_s: list[float],
    *,
    weekday: list[float] | None = None,
    weekend: list[float] | None = None,
) -> dict[str, Any]:
    hours = list(range(24))
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "all days",
            "x": hours,
            "y": list(hourly_requests_per_s),
            "marker": {"color": "#0a58ca"},
            "hovertemplate": "hour %{x}:00 UTC<br>%{y:.3g} requests/s<extra></extra>",
        }
    ]
    for name, curve, color in (("weekdays", weekday, "#1a7f37"), ("weekends", weekend, "#bf8700")):
        if curve is not None:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": name,
                    "x": hours,
                    "y": list(curve),
                    "line": {"color": color},
                    "hovertemplate": f"{name}, hour %{{x}}:00 UTC<br>%{{y:.3g}} requests/s<extra></extra>",
                }
            )
    return {
        "data": data,
        "layout": {
            "title": {"text": "Traffic by hour (UTC)"},
            "xaxis": {"title": {"text": "hour of day (UTC)"}, "dtick": 2},
            "yaxis": {"title": {"text": "requests per second"}, "rangemode": "tozero"},
            "margin": {"t": 40, "r": 10, "b": 50, "l": 60},
            "height": 300,
            "showlegend": len(data) > 1,
        },
    }


def length_figure(histogram: dict[str, list[Any]], *, title: str) -> dict[str, Any]:
    """A length histogram as a step line on a log axis: requests per bin, each bin drawn over [edge, next)."""
    edges, counts = histogram["edges"], histogram["counts"]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hv", "color": "#6f42c1"},
                "fill": "tozeroy",
                "x": list(edges),
                "y": [*counts, counts[-1]],
                "hovertemplate": "from %{x} tokens: %{y} requests<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": f"{title}: requests per length bin"},
            "xaxis": {"title": {"text": "tokens"}, "type": "log"},
            "yaxis": {"title": {"text": "requests"}, "rangemode": "tozero"},
            "margin": {"t": 40, "r": 10, "b": 50, "l": 60},
            "height": 260,
            "showlegend": False,
        },
    }
