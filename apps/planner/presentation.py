"""A stored plan as people read it: labels instead of internal keys, the hosted APIs split by how closely they
match the model, the break-even in words, what scaling to zero costs in waiting, and the rows of a comparison.
The plan page, the comparison page and the PDF report all read plans through here. Pure; no Django."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apps.planner.pipeline.plan import STAGES
from apps.planner.pipeline.rank import ENGINE_NAMES_SHOWN

__all__ = ["STAGES", "Column", "MethodRow"]  # STAGES: the plan pages show progress through them
REASON_LABELS = {
    "slo_unreachable": "misses the latency targets",
    "does_not_fit": "does not fit in memory",
    "no_offer": "no offer",
    "excluded_by_constraints": "excluded by the workload",
    "quality_bar": "below the quality bar",
    "context_exceeds_model": "longer than the model's context",
    "no_checkpoint": "no checkpoint",
    "no_image": "no engine image",
    "precision_unsupported": "precision unsupported by the GPU",
    "engine_cannot_serve_quant": "engine cannot serve the quantization",
    "invalid_parallelism": "invalid layout",
    "not_competitive": "not competitive on cost",
    "not_shortlisted": "costlier than the options listed",
}
STAGE_LABELS = dict(STAGES) | {"suggest": "looking for the nearest change that works"}


def engine_name(slug: Any) -> str:
    return ENGINE_NAMES_SHOWN.get(str(slug), str(slug))


def option_title(option: Mapping[str, Any]) -> str:
    """'vLLM fp8 · 2× h100-sxm (TP2)'."""
    parallelism = option.get("parallelism") or f"TP{option.get('tp')}"
    return (
        f"{engine_name(option.get('engine'))} {option.get('quant')} · "
        f"{option.get('gpus_per_replica', option.get('tp'))}× {option.get('gpu')} ({parallelism})"
    )


def family_label(rejection: Mapping[str, Any]) -> str:
    """What a rejection is about, naming only what it names: a whole quantization or GPU, or a family."""
    engine, quant, gpu = rejection.get("engine"), rejection.get("quant"), rejection.get("gpu")
    layout = rejection.get("parallelism") or (f"TP{rejection['tp']}" if rejection.get("tp") else "")
    if engine is None and gpu is None and quant:
        return f"{quant} (every engine and GPU)"
    if engine is None and quant is None and gpu:
        return f"{gpu} (every engine and precision)"
    if engine is None and quant is None and gpu is None:
        return "the whole workload"
    parts = [engine_name(engine) if engine else "", quant or "", f"on {gpu}" if gpu else "", layout]
    return " ".join(part for part in parts if part)


def reason_label(code: Any) -> str:
    return REASON_LABELS.get(str(code), str(code).replace("_", " "))


def rejected_rows(result: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "family": family_label(r),
            "reason": reason_label(r.get("reason_code")),
            "detail": str(r.get("reason")),
        }
        for r in result.get("rejected") or []
    ]


def rejected_summary(result: Mapping[str, Any]) -> list[tuple[str, int]]:
    counts: Mapping[str, int] = result.get("rejected_summary") or {}
    return [(reason_label(code), n) for code, n in sorted(counts.items(), key=lambda item: -item[1])]


@dataclass(frozen=True)
class MethodRow:
    label: str
    value: str


def _seconds(value: Any) -> str:
    return f"{float(value):.2f} s" if isinstance(value, int | float) else str(value)


def method_rows(method: Mapping[str, Any]) -> list[MethodRow]:
    """The method dict as labelled rows (never printed raw)."""
    rows = []
    plain = {
        "families_fitting": "Deployments that fit in memory",
        "families_screened": "Estimated with the mean-field model",
        "families_simulated": "Simulated request by request",
        "simulated_requests": "Requests per simulation",
        "seed": "Random seed of the simulated requests",
        "capacity": "Capacity per replica",
        "planned_capacity": "Capacity planned with",
        "hours_per_month": "Hours in a month",
        "cold_start": "Cold start",
    }
    for key, label in plain.items():
        if key in method:
            rows.append(MethodRow(label, str(method[key])))
    calibration = method.get("calibration") or {}
    if calibration:
        rows.append(
            MethodRow(
                "Calibration",
                f"{calibration.get('published_rows', 0):,} published benchmark rows and "
                f"{calibration.get('measured_rows', 0):,} measurements used in the fit",
            )
        )
        cv = calibration.get("cross_validation") or {}
        if isinstance(cv, Mapping) and cv:
            rows.append(MethodRow("Cross-validation", ", ".join(f"{k}: {v}" for k, v in _flat(cv))))
        if calibration.get("basis"):
            rows.append(MethodRow("Calibration basis", str(calibration["basis"])))
    timing = method.get("timing_s") or {}
    if timing:
        rows.append(MethodRow("Planning time", ", ".join(f"{k} {_seconds(v)}" for k, v in timing.items())))
    return rows


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, Mapping):
            out.extend(_flat(value, f"{name} "))
        elif isinstance(value, float):
            out.append((name, f"{value:.3g}"))
        else:
            out.append((name, str(value)))
    return out


_SIZE = re.compile(r"(\d+(?:\.\d+)?)b\b", re.IGNORECASE)


def _size_of(text: str) -> str:
    match = _SIZE.search(text.replace("-", " "))
    return f"{match.group(1)}B" if match else ""


def api_match(row: Mapping[str, Any]) -> str:
    """'same model', 'same family' or 'other model': same model means the same model at the same size."""
    if row.get("same_model_size"):
        return "same model"
    if row.get("same_model_family"):
        return "same family"
    return "other model"


def api_groups(result: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {"same model": [], "same family": [], "other model": []}
    for row in result.get("api_alternatives") or []:
        groups[api_match(row)].append(dict(row))
    for rows in groups.values():
        rows.sort(key=lambda r: r["monthly_cost_usd"])
    return groups


def break_even_view(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The break-even against the reference API in words, saying plainly when that API is another size."""
    be = result.get("break_even") or {}
    reference = be.get("reference_api")
    if not reference:
        return None
    model = (result.get("workload") or {}).get("model", "")
    match = {
        "cheapest API of the same model and size": "same model",
        "cheapest API of the same model family": "same family",
    }.get(reference.get("why", ""), "other model")
    if match == "same model":
        qualifier = "the same model"
    else:
        size, theirs = _size_of(model), _size_of(reference["model"])
        sizes = f" ({theirs} against {size})" if size and theirs and size != theirs else ""
        qualifier = (
            f"the same family but another model{sizes}: not the same quality"
            if match == "same family"
            else "a different model: no API in the catalog serves this one"
        )
    return {
        "provider": reference["provider"],
        "model": reference["model"],
        "match": match,
        "qualifier": qualifier,
        "api_monthly_usd": reference.get("monthly_cost_usd"),
        "api_usd_per_million": reference.get("blended_usd_per_mtok"),
        "self_monthly_usd": be.get("self_hosted_monthly_cost_usd"),
        "floor_monthly_usd": be.get("self_hosted_floor_monthly_cost_usd"),
        "break_even_million": be.get("break_even_million_tokens_per_month"),
        "floor_break_even_million": be.get("floor_break_even_million_tokens_per_month"),
        "volume_million": (be.get("monthly_tokens") or {}).get("total_million_per_month"),
        "cheaper": be.get("cheaper_at_this_volume"),
    }


def idle_hours(option: Mapping[str, Any]) -> list[int]:
    return [hour for hour, n in enumerate(option.get("replicas_by_hour") or []) if n == 0]


def scale_to_zero(option: Mapping[str, Any]) -> dict[str, Any] | None:
    """Hours the fleet has no replica, and the wait a request arriving after one of them has."""
    hours = idle_hours(option)
    if not hours:
        return None
    return {"hours": hours, "count": len(hours), "cold_start_s": option.get("cold_start_s")}


def hour_ranges(hours: Sequence[int]) -> str:
    """[0, 1, 2, 5] → '0:00–3:00, 5:00–6:00 UTC'."""
    spans: list[tuple[int, int]] = []
    for hour in hours:
        if spans and hour == spans[-1][1]:
            spans[-1] = (spans[-1][0], hour + 1)
        else:
            spans.append((hour, hour + 1))
    return ", ".join(f"{a}:00–{b}:00" for a, b in spans) + " UTC"


# ----------------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class Column:
    """One thing compared: an option of a plan, or a plan with no option."""

    plan_id: int
    workload: str
    inputs: Mapping[str, Any]
    option: Mapping[str, Any] | None
    title: str


def _latency(option: Mapping[str, Any], key: str) -> Any:
    return (option.get("predicted") or {}).get(key)


ROWS: tuple[tuple[str, str, Any], ...] = (
    # (label, unit shown after the value, getter(column) -> value)
    ("Workload", "", lambda c: c.workload),
    ("Model", "", lambda c: c.inputs.get("model")),
    ("Peak traffic", "req/s", lambda c: max((c.inputs.get("traffic") or {}).get("hourly_requests_per_s") or [0])),
    ("p95 TTFT target", "ms", lambda c: (c.inputs.get("slo") or {}).get("ttft_p95_ms")),
    ("p95 ITL target", "ms per token", lambda c: (c.inputs.get("slo") or {}).get("itl_p95_ms")),
    ("Pricing", "", lambda c: c.inputs.get("offer_pricing", "cheapest_listing").replace("_", " ")),
    ("Engine", "", lambda c: c.option and engine_name(c.option["engine"])),
    ("Quantization", "", lambda c: c.option and c.option["quant"]),
    ("GPU", "", lambda c: c.option and c.option["gpu"]),
    ("GPUs per replica", "", lambda c: c.option and c.option.get("gpus_per_replica")),
    ("Layout", "", lambda c: c.option and c.option.get("parallelism")),
    ("Provider", "", lambda c: c.option and c.option["provider"]),
    ("Instance", "", lambda c: c.option and c.option["instance_type"]),
    ("Instance price", "USD/h", lambda c: c.option and c.option.get("instance_usd_per_hour")),
    ("Replicas", "min–max", lambda c: c.option and _replica_range(c.option.get("replicas_by_hour") or [])),
    ("Monthly cost", "USD/month", lambda c: c.option and c.option["monthly_cost_usd"]),
    ("Cost per million tokens", "USD", lambda c: c.option and c.option.get("cost_per_million_tokens_usd")),
    ("Capacity per replica", "req/s", lambda c: c.option and c.option.get("max_requests_per_s_per_replica")),
    ("p95 TTFT at peak", "ms", lambda c: c.option and _latency(c.option, "ttft_p95_ms")),
    ("p95 ITL at peak", "ms per token", lambda c: c.option and _latency(c.option, "itl_p95_ms")),
    ("Prediction error band", "±, typical", lambda c: c.option and (c.option.get("error_band") or {}).get("median_ape")),
    ("Cold start", "s", lambda c: c.option and c.option.get("cold_start_s")),
)  # fmt: skip


def _replica_range(replicas: Sequence[int]) -> str:
    if not replicas:
        return "—"
    low, high = min(replicas), max(replicas)
    return str(low) if low == high else f"{low}–{high}"


def comparison_rows(columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Each row's values across the columns, and whether they differ (what the page highlights)."""
    rows = []
    for label, unit, get in ROWS:
        values = [get(column) for column in columns]
        shown = [None if v is None or v is False else v for v in values]
        numeric = all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in shown)
        rows.append(
            {
                "label": label,
                "unit": unit,
                "values": shown,
                "differs": len({repr(v) for v in shown}) > 1,
                "kind": "fraction" if label == "Prediction error band" else "number" if numeric else "text",
            }
        )
    return rows
