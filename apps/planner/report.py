"""The plan as a printable PDF for the manager who takes it to finance: the page's figures, read through the
same presentation module, with the charts drawn server-side by matplotlib and the pages laid out by
ReportLab. Nothing is fetched: fonts are the DejaVu faces matplotlib ships."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apps.planner import presentation
from apps.planner.glossary import TERMS
from apps.planner.templatetags.units import million_tokens, num, percent, sig, usd, usd_cents

BLUE, GREY, PINK, ORANGE, GREEN = "#0a58ca", "#8c959f", "#d63384", "#fd7e14", "#198754"
OPTION_COLOURS = (BLUE, PINK, GREEN)
API_COLOURS = {"same model": PINK, "same family": ORANGE, "other model": "#c9d1d9"}
GLOSSARY_KEYS = ("ttft", "itl", "p95", "tp", "replica", "quantization", "capacity", "error band", "warm standby",
                 "cold start", "break-even", "median market", "marketplace", "pareto")  # fmt: skip


def _fonts() -> tuple[str, str]:
    """DejaVu Sans (regular, bold) from matplotlib's data: every glyph the pages use (×, ±, –, ≤)."""
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(fonts / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(fonts / "DejaVuSans-Bold.ttf")))
    return "DejaVuSans", "DejaVuSans-Bold"


def _png(figure: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=160, bbox_inches="tight")
    buffer.seek(0)
    return buffer


def replicas_chart(result: Mapping[str, Any], hourly: Sequence[float]) -> io.BytesIO:
    """Replicas each hour for the top three options as grouped bars, the traffic on its own axis."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.2, 3.0))
    axis = figure.add_subplot()
    options = list(result.get("options") or [])[:3]
    width = 0.8 / max(1, len(options))
    for index, option in enumerate(options):
        axis.bar(
            [h - 0.4 + width * (index + 0.5) for h in range(24)],
            option["replicas_by_hour"],
            width=width,
            color=OPTION_COLOURS[index % 3],
            label=f"#{option['rank']} {presentation.option_title(option)}",
        )
    axis.set_xlabel("hour of day (UTC)")
    axis.set_ylabel("replicas")
    axis.set_xticks(range(0, 24, 2))
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    traffic = axis.twinx()
    traffic.step(
        range(24), list(hourly), where="mid", color="#57606a", linestyle=":", label="traffic (req/s)"
    )
    traffic.set_ylim(0, max(max(hourly, default=0), 1e-9) * 1.15)
    traffic.set_ylabel("requests/s")
    handles = axis.get_legend_handles_labels()[0] + traffic.get_legend_handles_labels()[0]
    # Above the plot, never over the bars.
    axis.legend(
        handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.02), ncols=2, frameon=False
    )
    axis.set_title("Replicas by hour over the traffic curve", fontsize=10, pad=34)
    return _png(figure)


def cost_chart(result: Mapping[str, Any]) -> io.BytesIO:
    from matplotlib.figure import Figure

    options = list(result.get("options") or [])[:8]
    figure = Figure(figsize=(7.2, 2.8))
    axis = figure.add_subplot()
    labels = [
        f"#{o['rank']}\n{presentation.engine_name(o['engine'])} {o['quant']}\n{o['gpus_per_replica']}× {o['gpu']}"
        for o in options
    ]
    ops = [o.get("ops_monthly_usd", 0.0) for o in options]
    compute = [o["monthly_cost_usd"] - o.get("ops_monthly_usd", 0.0) for o in options]
    axis.bar(labels, compute, color=BLUE, label="GPU instances")
    axis.bar(labels, ops, bottom=compute, color=GREY, label="operations hours")
    axis.set_ylabel("USD per month")
    axis.yaxis.set_major_formatter(lambda value, _: f"${value:,.0f}")
    axis.tick_params(axis="x", labelsize=6)
    axis.legend(fontsize=7, frameon=False)
    axis.set_title("Monthly cost by option", fontsize=10)
    return _png(figure)


def api_chart(result: Mapping[str, Any]) -> io.BytesIO:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    groups = presentation.api_groups(result)
    apis = (groups["same model"] + groups["same family"])[:8] + groups["other model"][:3]
    best = (result.get("options") or [None])[0]
    labels = [f"{a['provider']} {a['model']}"[:48] + f" ({presentation.api_match(a)})" for a in apis]
    values = [a["monthly_cost_usd"] for a in apis]
    colours = [API_COLOURS[presentation.api_match(a)] for a in apis]
    if best is not None:
        labels.insert(0, f"self-hosted #{best['rank']} {presentation.option_title(best)}")
        values.insert(0, best["monthly_cost_usd"])
        colours.insert(0, BLUE)
    figure = Figure(figsize=(7.2, 0.28 * len(labels) + 1.0))
    axis = figure.add_subplot()
    axis.barh(labels[::-1], values[::-1], color=colours[::-1])
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.0f}"))
    axis.tick_params(axis="y", labelsize=6.5)
    axis.set_xlabel("USD per month at this workload's token volume (log scale)")
    axis.set_title("Self-hosting against hosted APIs", fontsize=10)
    return _png(figure)


def _image(buffer: io.BytesIO, width_mm: float = 180) -> Any:
    """The chart at the page's width, its height following its own aspect."""
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    width_px, height_px = ImageReader(buffer).getSize()
    buffer.seek(0)
    return Image(buffer, width=width_mm * mm, height=width_mm * mm * height_px / width_px)


def report_pdf(context: Mapping[str, Any]) -> bytes:
    """The report of a finished plan, from the plan page's context (apps.planner.views.plan_context)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=12)
    small = ParagraphStyle(
        "small", parent=body, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#57606a")
    )
    h1 = ParagraphStyle("h1", parent=body, fontName=bold, fontSize=16, leading=20, spaceAfter=4)
    h2 = ParagraphStyle(
        "h2", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4
    )
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5)

    recommendation = context["recommendation"]
    result: Mapping[str, Any] = context["result"]
    inputs: Mapping[str, Any] = recommendation.inputs
    best: Mapping[str, Any] | None = context["best"]
    story: list[Any] = []

    def p(text: str, style: ParagraphStyle = body) -> None:
        story.append(Paragraph(text, style))

    def table(rows: list[list[Any]], widths: list[float], header: bool = True) -> None:
        data = [[Paragraph(str(value), cell) for value in row] for row in rows]
        t = Table(data, colWidths=[w * mm for w in widths], repeatRows=1 if header else 0)
        style = [
            ("FONTNAME", (0, 0), (-1, -1), regular),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")))
        t.setStyle(TableStyle(style))
        story.append(t)

    slo = inputs.get("slo") or {}
    p(f"Plan #{recommendation.pk}: {recommendation.workload.name}", h1)
    p(
        f"Team {recommendation.workload.team.name} · model {inputs.get('model')} · planned "
        f"{recommendation.created_at:%Y-%m-%d %H:%M} UTC · catalog {recommendation.catalog_version or '—'} · "
        f"targets p95 TTFT {num(slo.get('ttft_p95_ms'))} ms and p95 ITL {sig(slo.get('itl_p95_ms'))} ms per "
        f"token · peak traffic {sig(max((inputs.get('traffic') or {}).get('hourly_requests_per_s') or [0]))} "
        "requests/s",
        small,
    )
    story.append(Spacer(1, 4 * mm))
    if best is None:
        _infeasible(context, p, h2, small)
    else:
        _summary(context, best, p, h2, table)
        story.append(_image(replicas_chart(result, inputs["traffic"]["hourly_requests_per_s"])))
        p("Ranked options", h2)
        rows: list[list[Any]] = [
            [
                "#",
                "Deployment",
                "Offer",
                "Replicas",
                "USD/month",
                "USD per M tokens",
                "Capacity (req/s per replica)",
                "p95 TTFT / ITL at peak (ms)",
                "Evidence",
            ]
        ]
        for o in result.get("options") or []:
            predicted = o.get("predicted") or {}
            band = (o.get("error_band") or {}).get("median_ape")
            rows.append([
                ("=" if o.get("tied_with") else "") + str(o.get("standing", o["rank"])),
                presentation.option_title(o),
                f"{o['provider']} {o['instance_type']} ({usd_cents(o.get('instance_usd_per_hour'))}/h)",
                presentation._replica_range(o["replicas_by_hour"]),
                usd(o["monthly_cost_usd"]),
                usd(o.get("cost_per_million_tokens_usd")),
                sig(o.get("max_requests_per_s_per_replica")),
                f"{num(predicted.get('ttft_p95_ms'))} / {sig(predicted.get('itl_p95_ms'))}",
                f"{o.get('source', 'predicted')} ±{percent(band)}" if band is not None else o.get("source", "predicted"),
            ])  # fmt: skip
        table(rows, [9, 35, 34, 16, 17, 14, 17, 20, 18])
        story.append(_image(cost_chart(result)))
        story.append(_image(api_chart(result)))
    p("How this was computed", h2)
    for row in context["method_rows"]:
        p(f"<b>{row.label}</b>: {row.value}", small)
    for note in result.get("notes") or []:
        p(f"Note: {note}", small)
    p("Glossary", h2)
    for key in GLOSSARY_KEYS:
        term = TERMS[key]
        p(f"<b>{term.label}</b> ({term.name}): {term.meaning}", small)

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"Plan #{recommendation.pk} for {recommendation.workload.name}",
        author="LLM deployment advisor",
    )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.setFont(regular, 7)
        canvas.setFillColor(colors.HexColor("#57606a"))
        canvas.drawString(
            15 * mm, 8 * mm, f"LLM deployment advisor · plan #{recommendation.pk} · page {doc.page}"
        )

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _summary(context: Mapping[str, Any], best: Mapping[str, Any], p: Any, h2: Any, table: Any) -> None:
    result = context["result"]
    predicted = best.get("predicted") or {}
    market = best.get("market") or {}
    volume = ((result.get("break_even") or {}).get("monthly_tokens") or {}).get("total_million_per_month")
    p("Recommendation", h2)
    rows = [
        ["Deployment", f"{presentation.option_title(best)} on {best['provider']} {best['instance_type']}"],
        ["Monthly cost", f"{usd(best['monthly_cost_usd'])} per month (range {usd(best['monthly_cost_range_usd'][0])}–"
                         f"{usd(best['monthly_cost_range_usd'][1])} within the prediction's error band); a fleet fixed "
                         f"at the peak would cost {usd(best.get('fixed_fleet_monthly_usd'))}"],
        ["Cost per million tokens", f"{usd(best.get('cost_per_million_tokens_usd'))} at {million_tokens(volume)} tokens a month"],
        ["Replicas", f"{presentation._replica_range(best['replicas_by_hour'])} over the day"],
        ["Capacity per replica", f"{sig(predicted.get('capacity_requests_per_s_per_replica'))} req/s at p95 TTFT "
                                 f"{num(predicted.get('ttft_p95_ms_at_capacity'))} ms and ITL "
                                 f"{sig(predicted.get('itl_p95_ms_at_capacity'))} ms per token"],
        ["At the planned peak", f"{sig(predicted.get('at_requests_per_s_per_replica'))} req/s per replica: p95 TTFT "
                                f"{num(predicted.get('ttft_p95_ms'))} ms, ITL {sig(predicted.get('itl_p95_ms'))} ms per token"],
    ]  # fmt: skip
    if market.get("listings"):
        place = market.get("marketplace")
        rows.append([
            "GPU price",
            f"{usd_cents(market.get('planned_usd_per_gpu_hour'))} per GPU-hour planned; {market['listings']} listings "
            f"from {market['providers']} providers, median {usd_cents(market.get('median_usd_per_gpu_hour'))}, cheapest "
            f"{usd_cents(market.get('cheapest_usd_per_gpu_hour'))}" + (f". Availability: {place['availability']}" if place else ""),
        ])  # fmt: skip
    be = context.get("break_even")
    if be:
        rows.append([
            "Hosted API",
            f"{be['provider']} {be['model']} ({be['qualifier']}) costs {usd(be['api_monthly_usd'])} a month for the "
            f"same tokens; self-hosting breaks even at {million_tokens(be['break_even_million'])} tokens a month",
        ])  # fmt: skip
    stz = context.get("scale_to_zero")
    if stz:
        rows.append([
            "Scale to zero",
            f"No replica runs {context['idle_hours']}; the first request after an idle hour waits about "
            f"{num(stz['cold_start_s'])} s for a replica to start",
        ])  # fmt: skip
    table(rows, [40, 142], header=False)
    p(str(best.get("why", "")))


def _infeasible(context: Mapping[str, Any], p: Any, h2: Any, small: Any) -> None:
    feasibility = context.get("feasibility") or {}
    p("No deployment holds this workload", h2)
    for line in feasibility.get("why") or []:
        p(f"• {line}")
    if feasibility.get("suggestions"):
        p("What would make one hold it", h2)
        for suggestion in feasibility["suggestions"]:
            option = suggestion.get("option") or {}
            p(
                f"<b>{suggestion['title']}</b>: {suggestion['detail']} Then: {presentation.option_title(option)} on "
                f"{option.get('provider')} at {usd(option.get('monthly_cost_usd'))} a month."
            )
    for line in feasibility.get("not_helping") or []:
        p(line, small)
