"""result.json (DESIGN.md's format, `workers.schema`) to Measurement fields, with the provenance every figure needs:
where (host, accelerator, driver, CUDA), when, on what (engine name, version, arguments; model and weights).

Pure functions over dicts; the services decide which rows to write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from workers.dummy import shrink_architecture

METRICS = ("ttft", "itl", "tpot", "e2e")
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99")

# Probed accelerator names (nvidia-smi, torch, rocm-smi) to catalog slugs. Order matters: the first match wins,
# so the more specific names (H100 NVL, A100 80GB) come before the families they belong to.
_ACCELERATOR_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"gb200", "gb200"),
    (r"b200", "b200"),
    (r"h200", "h200"),
    (r"h100.*nvl", "h100-nvl"),
    (r"h100.*pcie", "h100-pcie"),
    (r"h100", "h100-sxm"),  # "NVIDIA H100 80GB HBM3" is the SXM part
    (r"a100.*80", "a100-80gb"),
    (r"a100", "a100-40gb"),
    (r"l40s", "l40s"),
    (r"l40", "l40"),
    (r"\bl4\b", "l4"),
    (r"a10g", "a10g"),
    (r"\ba10\b", "a10"),
    (r"\bt4\b", "t4"),
    (r"rtx 4090", "rtx-4090"),
    (r"rtx 6000 ada", "rtx-6000-ada"),
    (r"mi325", "mi325x"),
    (r"mi300", "mi300x"),
)


def accelerator_slug(hardware: Mapping[str, Any]) -> str | None:
    """The catalog slug for a probed host: `cpu` without accelerators, else a guess from the device name."""
    if hardware.get("accelerator") == "cpu" or not hardware.get("accelerator_count"):
        return "cpu"
    name = str(hardware.get("accelerator_model", "")).lower().replace("-", " ").replace("_", " ")
    for pattern, slug in _ACCELERATOR_PATTERNS:
        if re.search(pattern, name):
            return slug
    return None


def weights_description(model_info: Mapping[str, Any] | None) -> tuple[str, bool]:
    """("random weights, shrunk to 2 layers ...", shrunk) from result.json's model_info.

    A shrunk model is a smoke test of the path, not a measurement of the model: the label says so in words, so
    no page or API reader can take it for the full model's speed.
    """
    if not model_info:
        return "weights not recorded", False
    if not model_info.get("dummy_weights"):
        return f"real weights from {model_info.get('path', 'a local path')}", False
    architecture = model_info.get("architecture") or {}
    params = model_info.get("parameter_count")
    params_text = f", {params:,} parameters" if isinstance(params, int) else ""
    if model_info.get("shrunk"):
        if architecture:
            tiny = shrink_architecture(architecture, True)
            shape = f"{tiny.get('layers')} layers, hidden {tiny.get('hidden')}"
            full = f"{architecture.get('layers')} layers"
            return (
                f"random weights, shrunk to {shape}{params_text} (the full model has {full}); not representative"
            ), True
        return f"random weights, shrunk{params_text}; not representative", True
    if architecture:
        return (
            f"random weights at the full architecture ({architecture.get('layers')} layers{params_text})",
            False,
        )
    return f"random weights at the full architecture{params_text}", False


def _length(value: Any) -> tuple[int, dict[str, Any] | None]:
    """(tokens, distribution or None): a fixed length, or a distribution summarised by its mean."""
    if isinstance(value, Mapping):
        return max(1, round(float(value.get("mean", value.get("p50", 1))))), dict(value)
    return int(value), None


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def result_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every level of one result.json shares: hardware, engine, model, lengths."""
    hardware = dict(result.get("hardware") or {})
    engine = dict(result.get("engine") or {})
    weights, shrunk = weights_description(result.get("model_info"))
    isl, isl_distribution = _length(result.get("isl", 1))
    osl, osl_distribution = _length(result.get("osl", 1))
    slo = result.get("slo") or {}
    return {
        "host_name": str(hardware.get("hostname", ""))[:200],
        "accelerator_model": str(hardware.get("accelerator_model", ""))[:200],
        "accelerator_count": int(hardware.get("accelerator_count") or 0),
        "driver_version": str(hardware.get("driver_version") or "")[:60],
        "cuda_version": str(hardware.get("cuda_version") or "")[:30],
        "hardware": hardware,
        "engine": str(engine.get("name", "")),
        "engine_version": str(engine.get("version") or "")[:100],
        "engine_args": [str(a) for a in engine.get("args") or []],
        "weights": weights[:300],
        "shrunk": shrunk,
        "model_info": dict(result.get("model_info") or {}),
        "quant": str(result.get("quant", "")),
        "tp": int(result.get("tp") or 1),
        "isl": isl,
        "osl": osl,
        "isl_distribution": isl_distribution,
        "osl_distribution": osl_distribution,
        "slo": dict(slo) if isinstance(slo, Mapping) else {},
    }


def level_fields(level: Mapping[str, Any]) -> dict[str, Any]:
    """One level's load, counts and percentiles; `level_summary` keeps everything else the generator said."""
    fields: dict[str, Any] = {
        "concurrency": int(level["concurrency"]) if level.get("concurrency") is not None else None,
        "rate_per_s": _finite(level.get("rate")),
        "requests_ok": int(level.get("requests_ok") or 0),
        "requests_failed": int(level.get("requests_failed") or 0),
        "output_tokens_per_s": _finite(level.get("output_tokens_per_s")) or 0.0,
        "requests_per_s": _finite(level.get("requests_per_s")) or 0.0,
        "goodput_requests_per_s": _finite(level.get("goodput_requests_per_s")) or 0.0,
        "mean_prompt_tokens": _finite(level.get("mean_prompt_tokens")),
        "mean_output_tokens": _finite(level.get("mean_output_tokens")),
        "level_summary": {k: v for k, v in level.items() if k != "samples"},
    }
    for metric in METRICS:
        summary = level.get(f"{metric}_ms") or {}
        for key in PERCENTILE_KEYS:
            fields[f"{metric}_{key}_ms"] = _finite(summary.get(key))
    return fields


def provenance_line(
    *,
    accelerator: str,
    accelerator_model: str,
    host_name: str,
    engine: str,
    engine_version: str,
    weights: str,
    measured_at: datetime | None,
    source: str,
) -> str:
    """One sentence a page can show next to a measured figure."""
    on = accelerator if not accelerator_model else f"{accelerator} ({accelerator_model})"
    where = f" on host {host_name}" if host_name else ""
    when = f", {measured_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if measured_at else ""
    version = f" {engine_version}" if engine_version else ""
    return f"Measured on {on}{where} with {engine}{version}, {weights}{when}; {source}."
