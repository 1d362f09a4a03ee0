"""Plotly-ready figures for a recommendation, as plain dicts (tested without a browser).

Every trace says in its name whether its numbers are measured or predicted; predicted curves carry their error
band as a shaded area.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import Calibration
from apps.planner.perf.corpus import MeasuredPoint
from apps.planner.perf.deployment import Deployment, UnsupportedCombination
from apps.planner.perf.predict import predict_point
from apps.planner.presentation import api_groups, api_match

COLOURS = ("#0a58ca", "#d63384", "#198754", "#fd7e14", "#6f42c1")
HOURS = list(range(24))
CONCURRENCY_LEVELS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "y": 0.98, "yanchor": "top"},
        "margin": {"t": 100, "r": 70, "b": 50, "l": 70},
        "height": 380,
        # Legends above the plot: below it they collide with long or rotated axis labels.
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        **extra,
    }


def option_label(option: dict[str, Any]) -> str:
    return f"#{option['rank']} {option['engine']} {option['quant']} {option['tp']}x {option['gpu']}"


def replicas_figure(
    result: dict[str, Any], hourly_requests_per_s: Sequence[float], top: int = 3
) -> dict[str, Any]:
    """Replicas each hour as grouped bars (one colour per option, side by side, so equal schedules cannot hide
    one another) under the traffic curve on its own axis, scaled to show the peak."""
    peak = max(hourly_requests_per_s or [0]) or 1.0
    data: list[dict[str, Any]] = []
    options = result.get("options", [])[:top]
    for index, option in enumerate(options):
        data.append(
            {
                "type": "bar",
                "name": f"{option_label(option)} replicas ({option['source']})",
                "x": HOURS,
                "y": option["replicas_by_hour"],
                "marker": {"color": COLOURS[index % len(COLOURS)], "opacity": 1.0 if index == 0 else 0.75},
                "hovertemplate": "%{x}:00 UTC: %{y} replicas<extra>" + option_label(option) + "</extra>",
            }
        )
    most = max((max(o["replicas_by_hour"]) for o in options), default=1)
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "traffic (requests/s)",
            "x": HOURS,
            "y": list(hourly_requests_per_s),
            "yaxis": "y2",
            "line": {"shape": "hvh", "color": "#57606a", "width": 2, "dash": "dot"},
            "hovertemplate": "%{x}:00 UTC: %{y:.3g} req/s<extra></extra>",
        }
    )
    return {
        "data": data,
        "layout": _layout(
            "Replicas by hour over the traffic curve",
            xaxis={"title": {"text": "hour of day (UTC)"}, "dtick": 2},
            yaxis={
                "title": {"text": "replicas"},
                "range": [0, most * 1.15 + 0.5],
                "dtick": max(1, most // 8),
            },
            yaxis2={
                "title": {"text": "requests/s", "standoff": 8},
                "overlaying": "y",
                "side": "right",
                "range": [0, peak * 1.15],
                "tickmode": "auto",
                "nticks": 6,
                "showgrid": False,
                "automargin": True,
            },
            barmode="group",
            bargap=0.25,
        ),
    }


def cost_figure(result: dict[str, Any], top: int = 8) -> dict[str, Any]:
    options = result.get("options", [])[:top]
    labels = [f"#{o['rank']} {o['engine']} {o['quant']}<br>{o['tp']}x {o['gpu']}" for o in options]
    ops = [o.get("ops_monthly_usd", 0.0) for o in options]
    compute = [round(o["monthly_cost_usd"] - o.get("ops_monthly_usd", 0.0), 2) for o in options]
    saved = [
        round(o.get("fixed_fleet_monthly_usd", o["monthly_cost_usd"]) - o["monthly_cost_usd"], 2)
        for o in options
    ]
    return {
        "data": [
            {
                "type": "bar",
                "name": "GPU instances (predicted fleet)",
                "x": labels,
                "y": compute,
                "marker": {"color": "#0a58ca"},
            },
            {
                "type": "bar",
                "name": "operations hours",
                "x": labels,
                "y": ops,
                "marker": {"color": "#8c959f"},
            },
            {
                "type": "bar",
                "name": "saved by scheduled scaling vs a fixed peak fleet",
                "x": labels,
                "y": saved,
                "marker": {"color": "#b6e3c4"},
            },
        ],
        "layout": _layout(
            "Monthly cost by option (USD)",
            barmode="stack",
            yaxis={"title": {"text": "USD per month"}},
            xaxis={"automargin": True, "tickangle": 0},
        ),
    }


API_COLOURS = {"same model": "#d63384", "same family": "#fd7e14", "other model": "#c9d1d9"}


def api_figure(result: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """The best self-hosted option against the hosted APIs (same model first, then the same family, then the
    cheapest others), on a log axis whose ticks read as dollars at 1, 2 and 5 per decade."""
    best = (result.get("options") or [None])[0]
    groups = api_groups(result)
    apis = (groups["same model"] + groups["same family"])[:top]
    apis += groups["other model"][: max(3, top - len(apis))]
    labels = [f"{a['provider']} {a['model']} ({api_match(a)})" for a in apis]
    values = [a["monthly_cost_usd"] for a in apis]
    colours = [API_COLOURS[api_match(a)] for a in apis]
    if best is not None:
        labels.insert(0, f"self-hosted {option_label(best)}")
        values.insert(0, best["monthly_cost_usd"])
        colours.insert(0, "#0a58ca")
    positive = [v for v in values if v > 0] or [1.0]
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [
        m * 10**e
        for e in range(low, high + 1)
        for m in (1, 2, 5)
        if min(positive) / 2 <= m * 10**e <= max(positive) * 2
    ]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "monthly cost at this workload's token volume",
                "x": values,
                "y": labels,
                "marker": {"color": colours},
                "hovertemplate": "%{y}: $%{x:,.0f}/month<extra></extra>",
            }
        ],
        "layout": _layout(
            "Self-hosting against hosted APIs (USD per month, log scale)",
            xaxis={
                "title": {"text": "USD per month"},
                "type": "log",
                "tickvals": ticks,
                "ticktext": [f"${t:,.0f}" for t in ticks],
            },
            yaxis={"autorange": "reversed", "automargin": True},
            height=max(300, 34 * len(labels) + 140),
            showlegend=False,
        ),
    }


def _deployment(catalog: CatalogSnapshot, option: dict[str, Any]) -> Deployment:
    return Deployment(
        model=catalog.model(option["model"]),
        gpu=catalog.gpu(option["gpu"]),
        quant=catalog.quantization(option["quant"]),
        engine=option["engine"],
        tp=int(option["tp"]),
    )


def latency_figure(
    result: dict[str, Any],
    *,
    catalog: CatalogSnapshot,
    calibration: Calibration,
    measured: Sequence[MeasuredPoint],
    isl: int,
    osl: int,
    top: int = 3,
) -> dict[str, Any]:
    """Inter-token latency against output throughput per replica, as concurrency rises: the model's curve with
    its error band, and the measured points of the same configuration."""
    data: list[dict[str, Any]] = []
    for index, option in enumerate(result.get("options", [])[:top]):
        colour = COLOURS[index % len(COLOURS)]
        try:
            dep = _deployment(catalog, option)
        except KeyError:
            continue
        xs, ys, band = [], [], 0.0
        for concurrency in CONCURRENCY_LEVELS:
            try:
                point = predict_point(calibration, dep, isl=isl, osl=osl, concurrency=concurrency)
            except UnsupportedCombination:
                break
            if not point.fits or not math.isfinite(point.tpot_ms):
                break
            if point.max_concurrent_sequences and concurrency > point.max_concurrent_sequences:
                break
            xs.append(round(point.output_tokens_per_s, 1))
            ys.append(round(point.tpot_ms, 2))
            # The curve is time per output token: its band is the TPOT group's typical cross-validated error.
            band = point.bands["tpot_ms"].median_ape if point.source == "predicted" else band
        if not xs:
            continue
        label = option_label(option)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{label}: predicted ±{band:.0%} band",
                "x": xs + xs[::-1],
                "y": [y * (1 + band) for y in ys] + [y * (1 - band) for y in ys[::-1]],
                "fill": "toself",
                "line": {"width": 0},
                "fillcolor": colour + "22",
                "hoverinfo": "skip",
                "showlegend": False,
            }
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{label}: predicted (±{band:.0%})",
                "x": xs,
                "y": ys,
                "line": {"color": colour, "dash": "dash"},
                "customdata": list(CONCURRENCY_LEVELS[: len(xs)]),
                "hovertemplate": "concurrency %{customdata}: %{x:.0f} tok/s, ITL %{y:.1f} ms (predicted)<extra></extra>",
            }
        )
        points = [
            m
            for m in measured
            if (m.model_slug, m.gpu_slug, m.engine, m.quant, m.tp)
            == (option["model"], option["gpu"], option["engine"], option["quant"], option["tp"])
            and m.tpot_ms is not None
        ]
        if points:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{label}: measured",
                    "x": [round(m.output_tokens_per_s / m.replicas, 1) for m in points],
                    "y": [m.tpot_ms for m in points],
                    "marker": {"color": colour, "size": 10, "symbol": "diamond"},
                    "text": [m.source for m in points],
                    "hovertemplate": "%{x:.0f} tok/s, ITL %{y:.1f} ms (measured: %{text})<extra></extra>",
                }
            )
    slo = result.get("workload", {}).get("slo", {})
    layout = _layout(
        f"Inter-token latency against throughput per replica (isl {isl}, osl {osl})",
        xaxis={"title": {"text": "output tokens/s per replica"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "time per output token (ms)"}, "rangemode": "tozero"},
    )
    if slo.get("itl_p95_ms"):
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": slo["itl_p95_ms"],
                "y1": slo["itl_p95_ms"],
                "line": {"color": "#b3261e", "dash": "dot"},
            }
        ]
        layout["annotations"] = [
            {
                "xref": "paper",
                "x": 1,
                "y": slo["itl_p95_ms"],
                "text": "p95 ITL target",
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": "right",
            }
        ]
    return {"data": data, "layout": layout}
