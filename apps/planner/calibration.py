"""Efficiencies per (engine, GPU architecture, quantization), fitted to measured throughput; and predictions that
say where their numbers come from.

Four parameters per key, each with a physical meaning the step-time model uses directly (see calc.PerfModel):
MBU (fraction of peak memory bandwidth the linear layers reach streaming weights), MFU (fraction of peak tensor
throughput), a fixed per-step overhead, and attention MBU (fraction of peak bandwidth decode attention reaches
streaming the KV cache).
They are fitted by Levenberg-Marquardt on log throughput, with a weak pull toward the priors below so that a key
with one or two measurements stays physically sensible. The shipped calibration set is 16 published TRT-LLM FP8
rows on H100, so only trtllm/hopper/fp8 is fitted out of the box; every other key borrows from it ("transferred")
or uses the priors, with a wider error band.

Measured data for the exact configuration beats the model: `predict_point` returns it labelled "measured".
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from apps.catalog.specs import DATA_DIR, CatalogSnapshot, GpuSpec, ModelSpec, QuantSpec, first_number
from apps.planner.calc import (
    Deployment,
    Efficiency,
    PerfModel,
    Prediction,
    build_perf_model,
    calibration_key,
    check_supported,
    predict,
    steady_state,
)


@dataclass(frozen=True)
class MeasuredPoint:
    """One measured operating point: published, or from this project's benchmark runs.

    concurrency None means offline maximum throughput (all requests queued). output_tokens_per_s is the total
    over gpu_count GPUs (None: tp, one replica).
    """

    model_slug: str
    gpu_slug: str
    engine: str
    quant: str
    tp: int
    isl: int
    osl: int
    concurrency: int | None
    output_tokens_per_s: float
    ttft_p50_ms: float | None
    tpot_ms: float | None
    source: str
    gpu_count: int | None = None
    max_num_seqs: int | None = None  # the batch limit the benchmark ran with, when known
    point_id: str = ""

    @property
    def replicas(self) -> int:
        return max(1, (self.gpu_count or self.tp) // self.tp)


# Priors: what a key without measurements gets. From DESIGN.md's physics notes and public profiles: tuned engines
# reach 50-65% of peak bandwidth in decode at TP 1-2 (TP 8 losses come from the all-reduce model, not from
# here) and 40-60% of peak tensor throughput in prefill; Python-heavy schedulers pay more per step.
# Decode attention kernels (TRT-LLM XQA, FlashInfer, FlashAttention) stream long contiguous KV blocks and get
# closer to peak bandwidth than small-M GEMMs do; transformers' SDPA path pads and copies.
@dataclass(frozen=True)
class Prior:
    mbu: float
    mfu: float
    step_overhead_ms: float
    attention_mbu: float
    error_band_rel: float


ENGINE_PRIORS: dict[str, Prior] = {
    "trtllm": Prior(0.65, 0.55, 1.0, 0.85, 0.30),
    "sglang": Prior(0.62, 0.52, 1.5, 0.80, 0.30),
    "vllm": Prior(0.60, 0.50, 2.0, 0.80, 0.30),
    "tgi": Prior(0.55, 0.45, 3.0, 0.75, 0.35),
    "llamacpp": Prior(0.50, 0.30, 2.0, 0.60, 0.50),
    "transformers": Prior(0.35, 0.30, 15.0, 0.45, 0.50),
}

# Relative to the same engine at 16-bit: weight-only 4-bit kernels dequantize in the GEMM (lower MFU) and read
# scales (slightly lower MBU); W8A8 INT8 GEMMs are a little less mature than FP8 ones.
QUANT_FACTORS: dict[str, tuple[float, float]] = {
    "awq-int4": (0.90, 0.70),
    "gptq-int4": (0.90, 0.70),
    "gguf-q4_k_m": (0.90, 0.60),
    "gguf-q8_0": (0.95, 0.70),
    "int8": (1.0, 0.90),
    "nvfp4": (1.0, 0.80),
}

# CPUs: the catalog's bandwidth is already a sustained (STREAM) figure; AMX matmuls reach a small share of peak.
# llama.cpp streams quantized weights close to STREAM bandwidth; transformers' eager PyTorch path does not.
CPU_PRIORS: dict[str, Prior] = {
    "llamacpp": Prior(0.70, 0.25, 5.0, 0.70, 0.50),
    "transformers": Prior(0.35, 0.20, 20.0, 0.40, 0.50),
}

TRANSFER_BAND_QUANT = 0.10  # added to the fitted band when borrowing from the same engine+architecture
TRANSFER_BAND_ARCH = 0.15  # ... from the same engine on another architecture
# Weighted least squares in log space: a measurement is trusted to ~5% (run-to-run spread), a prior to a factor
# of ~1.6. With that weighting data dominates from a few points, and a lone point cannot drag four parameters.
MEASUREMENT_SD = 0.05
PRIOR_PULL = 0.5
MEASURED_BAND = 0.05  # run-to-run spread of a repeated benchmark


def prior_efficiency(engine: str, gpu: GpuSpec, quant: QuantSpec) -> Efficiency:
    prior = CPU_PRIORS.get(engine, CPU_PRIORS["transformers"]) if gpu.is_cpu else ENGINE_PRIORS[engine]
    mbu_f, mfu_f = QUANT_FACTORS.get(quant.slug, (1.0, 1.0))
    return Efficiency(
        mbu=prior.mbu * mbu_f,
        mfu=prior.mfu * mfu_f,
        step_overhead_ms=prior.step_overhead_ms,
        attention_mbu=prior.attention_mbu,
        calibration_key=calibration_key(engine, gpu, quant),
        basis="prior",
        error_band_rel=prior.error_band_rel,
    )


# ------------------------------------------------------------------------------------------------------------
# Data


def load_published_points(path: Path | None = None) -> list[MeasuredPoint]:
    """The shipped calibration_benchmarks.csv as measured points."""
    points = []
    with (path or DATA_DIR / "calibration_benchmarks.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            offline = row["mode"].strip() == "max-throughput"
            points.append(
                MeasuredPoint(
                    model_slug=row["model_slug"],
                    gpu_slug=row["gpu_slug"],
                    engine=row["engine"],
                    quant=row["quant"],
                    tp=int(row["tp"]),
                    gpu_count=int(row["gpu_count"]),
                    isl=int(row["isl"]),
                    osl=int(row["osl"]),
                    concurrency=None if offline else int(row["concurrency"]),
                    output_tokens_per_s=float(row["output_tok_s_total"]),
                    ttft_p50_ms=first_number(row["ttft_ms"]),
                    tpot_ms=first_number(row["tpot_itl_ms"]),
                    source=f"{row['source']} ({row['engine_version']})",
                    point_id=row["id"],
                )
            )
    return points


@dataclass(frozen=True)
class _Row:
    """A measured point resolved against the catalog, with the efficiency-independent parts precomputed."""

    point: MeasuredPoint
    deployment: Deployment
    geometry: PerfModel  # built with unit efficiencies; the fit rescales bandwidth, compute and overhead


_UNIT = Efficiency(1.0, 1.0, 0.0, 1.0, "unit", "unit", 0.0)


def _resolve(point: MeasuredPoint, catalog: CatalogSnapshot) -> _Row | None:
    try:
        model: ModelSpec = catalog.model(point.model_slug)
        gpu = catalog.gpu(point.gpu_slug)
        quant = catalog.quantization(point.quant)
    except KeyError:
        return None
    dep = Deployment(
        model=model, gpu=gpu, quant=quant, engine=point.engine, tp=point.tp, max_num_seqs=point.max_num_seqs
    )
    offline = point.concurrency is None
    seqs = point.max_num_seqs or (dep.profile.offline_max_num_seqs if offline else dep.profile.max_num_seqs)
    geometry = build_perf_model(dep, _UNIT, context_tokens=point.isl + point.osl, max_num_seqs=seqs)
    if not geometry.memory.fits:
        return None
    return _Row(point, dep, geometry)


def _with(geometry: PerfModel, theta: Sequence[float]) -> PerfModel:
    mbu, mfu, overhead_ms, attention_mbu = theta
    return geometry.scaled(mbu, mfu, overhead_ms, attention_mbu)


def _predicted_tokens_per_s(row: _Row, theta: Sequence[float]) -> float:
    perf = _with(row.geometry, theta)
    state = steady_state(perf, row.point.isl, row.point.osl, _per_replica(row.point))
    return state.output_tokens_per_s * row.point.replicas


def _per_replica(point: MeasuredPoint) -> int | None:
    if point.concurrency is None:
        return None
    return max(1, math.ceil(point.concurrency / point.replicas))


# ------------------------------------------------------------------------------------------------------------
# Fit


# Order of theta: mbu, mfu, step overhead (ms), attention mbu.
_LOWER = np.array([0.10, 0.05, 0.0, 0.10])
_UPPER = np.array([0.95, 0.90, 30.0, 0.95])
_N_THETA = 4


def _to_theta(u: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
    # Clipped: far outside ±50 the logistic is already flat, and exp() would overflow.
    return [float(x) for x in _LOWER + (_UPPER - _LOWER) / (1.0 + np.exp(-np.clip(u, -50.0, 50.0)))]


def _to_u(theta: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    p = (np.asarray(theta, dtype=np.float64) - _LOWER) / (_UPPER - _LOWER)
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


@dataclass(frozen=True)
class FitResult:
    mbu: float
    mfu: float
    step_overhead_ms: float
    attention_mbu: float
    n_points: int
    iterations: int

    @property
    def theta(self) -> tuple[float, float, float, float]:
        return (self.mbu, self.mfu, self.step_overhead_ms, self.attention_mbu)


def fit_rows(
    rows: Sequence[_Row], prior: Efficiency, start: Sequence[float] | None = None, max_iterations: int = 60
) -> FitResult:
    """Levenberg-Marquardt on log(predicted / measured) throughput, plus a weak log-space pull toward the prior."""
    prior_theta = [prior.mbu, prior.mfu, max(prior.step_overhead_ms, 0.1), prior.attention_mbu]
    measured = np.log([row.point.output_tokens_per_s for row in rows])

    def residuals(u: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        theta = _to_theta(u)
        predicted = np.log([max(_predicted_tokens_per_s(row, theta), 1e-9) for row in rows])
        pull = [math.log(max(theta[i], 1e-3) / prior_theta[i]) / PRIOR_PULL for i in range(_N_THETA)]
        # The overhead pull is weaker: its prior is the least certain of the four.
        pull[2] *= 0.2
        return np.concatenate([(predicted - measured) / MEASUREMENT_SD, np.asarray(pull)])

    u = _to_u(start or prior_theta)
    r = residuals(u)
    cost = float(r @ r)
    damping = 1e-2
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        jac = np.empty((r.size, _N_THETA))
        for j in range(_N_THETA):
            du = np.zeros(_N_THETA)
            du[j] = 1e-4
            jac[:, j] = (residuals(u + du) - r) / 1e-4
        jtj = jac.T @ jac
        step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-9), -jac.T @ r)
        candidate = u + step
        r_new = residuals(candidate)
        new_cost = float(r_new @ r_new)
        if new_cost < cost:
            improvement = cost - new_cost
            u, r, cost = candidate, r_new, new_cost
            damping = max(damping / 3.0, 1e-7)
            if improvement < 1e-7 * max(cost, 1.0):
                break
        else:
            damping *= 4.0
            if damping > 1e6:
                break
    theta = _to_theta(u)
    return FitResult(theta[0], theta[1], theta[2], theta[3], len(rows), iterations)


def _ape(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured


def _summary(apes: Sequence[float]) -> dict[str, float]:
    if not apes:
        return {"median_ape": math.nan, "p90_ape": math.nan}
    values = np.asarray(apes)
    return {"median_ape": float(np.median(values)), "p90_ape": float(np.percentile(values, 90))}


@dataclass(frozen=True)
class KeyCalibration:
    key: str
    fit: FitResult
    in_sample: dict[str, float]
    leave_one_out: dict[str, float]
    error_band_rel: float
    rows: tuple[dict[str, Any], ...]
    latency_in_sample: dict[str, dict[str, float]] = field(default_factory=dict)  # not fitted; reported


@dataclass
class Calibration:
    """Fitted keys plus the measured points; hands out an Efficiency for any (engine, GPU, quantization)."""

    catalog_version: str
    keys: dict[str, KeyCalibration] = field(default_factory=dict)
    points: tuple[MeasuredPoint, ...] = ()
    skipped: tuple[str, ...] = ()

    def efficiency(self, engine: str, gpu: GpuSpec, quant: QuantSpec) -> Efficiency:
        key = calibration_key(engine, gpu, quant)
        if key in self.keys:
            k = self.keys[key]
            return Efficiency(
                k.fit.mbu,
                k.fit.mfu,
                k.fit.step_overhead_ms,
                k.fit.attention_mbu,
                key,
                "fitted",
                k.error_band_rel,
                k.fit.n_points,
            )
        prior = prior_efficiency(engine, gpu, quant)
        same_engine = [k for k in self.keys.values() if k.key.split("/")[0] == engine]
        same_arch = [k for k in same_engine if k.key.split("/")[1] == gpu.architecture]
        other_gpu_arch = [] if gpu.is_cpu else [k for k in same_engine if k.key.split("/")[1] != "cpu"]
        for extra_band, donors in ((TRANSFER_BAND_QUANT, same_arch), (TRANSFER_BAND_ARCH, other_gpu_arch)):
            if donors:
                donor = max(donors, key=lambda k: k.fit.n_points)
                d_engine, d_arch, d_quant = donor.key.split("/")
                # Keep the donor's ratio to its own prior, applied to this key's prior.
                donor_prior = _prior_for(d_engine, d_arch, d_quant)
                return Efficiency(
                    mbu=min(0.95, prior.mbu * donor.fit.mbu / donor_prior.mbu),
                    mfu=min(0.90, prior.mfu * donor.fit.mfu / donor_prior.mfu),
                    step_overhead_ms=donor.fit.step_overhead_ms,
                    attention_mbu=min(
                        0.95, prior.attention_mbu * donor.fit.attention_mbu / donor_prior.attention_mbu
                    ),
                    calibration_key=key,
                    basis=f"transferred from {donor.key}",
                    error_band_rel=min(prior.error_band_rel, donor.error_band_rel + extra_band),
                    n_points=0,
                )
        return prior

    def measured_match(
        self,
        *,
        model: str,
        gpu: str,
        engine: str,
        quant: str,
        tp: int,
        isl: int,
        osl: int,
        concurrency: int | None,
        gpu_count: int,
    ) -> MeasuredPoint | None:
        """A measurement of exactly this configuration (lengths within 2%), newest first."""
        for point in reversed(self.points):
            if (
                (point.model_slug, point.gpu_slug, point.engine, point.quant, point.tp)
                == (model, gpu, engine, quant, tp)
                and (point.gpu_count or point.tp) == gpu_count
                and point.concurrency == concurrency
                and abs(point.isl - isl) <= 0.02 * isl
                and abs(point.osl - osl) <= 0.02 * osl
            ):
                return point
        return None


def _prior_for(engine: str, architecture: str, quant_slug: str) -> Prior:
    prior = (
        CPU_PRIORS.get(engine, CPU_PRIORS["transformers"]) if architecture == "cpu" else ENGINE_PRIORS[engine]
    )
    mbu_f, mfu_f = QUANT_FACTORS.get(quant_slug, (1.0, 1.0))
    return replace(prior, mbu=prior.mbu * mbu_f, mfu=prior.mfu * mfu_f)


def _calibrate_key(key: str, rows: list[_Row], catalog: CatalogSnapshot, *, loo: bool) -> KeyCalibration:
    first = rows[0]
    prior = prior_efficiency(first.deployment.engine, first.deployment.gpu, first.deployment.quant)
    fit = fit_rows(rows, prior)
    theta = fit.theta
    in_sample = [_predicted_tokens_per_s(row, theta) for row in rows]
    loo_predictions: list[float] = []
    if loo and len(rows) >= 3:
        for i, row in enumerate(rows):
            others = rows[:i] + rows[i + 1 :]
            # Warm-started at the full fit, a few iterations reach the held-out optimum.
            held = fit_rows(others, prior, start=fit.theta, max_iterations=8)
            loo_predictions.append(_predicted_tokens_per_s(row, held.theta))
    table: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        p = row.point
        perf = _with(row.geometry, theta)
        state = steady_state(perf, p.isl, p.osl, _per_replica(p))
        table.append(
            {
                "id": p.point_id,
                "model": p.model_slug,
                "gpu": p.gpu_slug,
                "tp": p.tp,
                "isl": p.isl,
                "osl": p.osl,
                "concurrency": p.concurrency,
                "measured_tokens_per_s": p.output_tokens_per_s,
                "predicted_tokens_per_s": round(in_sample[i], 1),
                "ape": round(_ape(in_sample[i], p.output_tokens_per_s), 4),
                "loo_predicted_tokens_per_s": round(loo_predictions[i], 1) if loo_predictions else None,
                "loo_ape": round(_ape(loo_predictions[i], p.output_tokens_per_s), 4)
                if loo_predictions
                else None,
                "measured_ttft_ms": p.ttft_p50_ms,
                "predicted_ttft_ms": round(state.ttft_ms, 1) if p.concurrency is not None else None,
                "measured_tpot_ms": p.tpot_ms,
                "predicted_tpot_ms": round(state.tpot_ms, 2) if p.concurrency is not None else None,
                "source": p.source,
            }
        )
    in_summary = _summary(
        [_ape(a, r.point.output_tokens_per_s) for a, r in zip(in_sample, rows, strict=True)]
    )
    loo_summary = _summary(
        [_ape(a, r.point.output_tokens_per_s) for a, r in zip(loo_predictions, rows, strict=False)]
    )
    # The band is what a new point of this key should expect: leave-one-out p90 when there is one, else
    # twice the in-sample p90; never tighter than measurement spread, never wider than the prior's.
    band = loo_summary["p90_ape"] if loo_predictions else 2.0 * in_summary["p90_ape"]
    band = min(max(band, MEASURED_BAND), prior.error_band_rel)
    latency = {
        name: _summary(
            [
                _ape(row[f"predicted_{name}"], row[f"measured_{name}"])
                for row in table
                if row[f"predicted_{name}"] is not None and row[f"measured_{name}"]
            ]
        )
        for name in ("ttft_ms", "tpot_ms")
    }
    return KeyCalibration(key, fit, in_summary, loo_summary, band, tuple(table), latency)


def calibrate(
    catalog: CatalogSnapshot,
    measured: Iterable[MeasuredPoint] = (),
    *,
    include_published: bool = True,
    leave_one_out: bool = True,
) -> Calibration:
    """Fit every key that has throughput data (published rows plus `measured`)."""
    points = tuple(load_published_points() if include_published else ()) + tuple(measured)
    return _calibrate_cached(catalog, points, leave_one_out)


@lru_cache(maxsize=8)
def _calibrate_cached(
    catalog: CatalogSnapshot, points: tuple[MeasuredPoint, ...], leave_one_out: bool
) -> Calibration:
    grouped: dict[str, list[_Row]] = {}
    skipped = []
    for point in points:
        try:
            row = _resolve(point, catalog)
        except (ValueError, KeyError) as exc:
            skipped.append(f"{point.point_id or point.source}: {exc}")
            continue
        if row is None:
            skipped.append(f"{point.point_id or point.source}: not in catalog or does not fit")
            continue
        key = calibration_key(point.engine, row.deployment.gpu, row.deployment.quant)
        grouped.setdefault(key, []).append(row)
    result = Calibration(catalog_version=catalog.version, points=points, skipped=tuple(skipped))
    for key, rows in grouped.items():
        result.keys[key] = _calibrate_key(key, rows, catalog, loo=leave_one_out)
    return result


def calibration_report(calibration: Calibration) -> dict[str, Any]:
    """Per key: fitted parameters, each row's predicted against measured, median and p90 APE in-sample and
    leave-one-out."""
    return {
        "catalog_version": calibration.catalog_version,
        "metric": "output tokens/s (total); APE = |predicted - measured| / measured",
        "keys": [
            {
                "key": k.key,
                "n_points": k.fit.n_points,
                "mbu": round(k.fit.mbu, 4),
                "mfu": round(k.fit.mfu, 4),
                "step_overhead_ms": round(k.fit.step_overhead_ms, 3),
                "attention_mbu": round(k.fit.attention_mbu, 4),
                "in_sample": {name: round(v, 4) for name, v in k.in_sample.items()},
                "leave_one_out": {name: round(v, 4) for name, v in k.leave_one_out.items()},
                "error_band_rel": round(k.error_band_rel, 4),
                "latency_in_sample": {
                    metric: {name: round(v, 4) for name, v in summary.items() if math.isfinite(v)}
                    for metric, summary in k.latency_in_sample.items()
                },
                "rows": list(k.rows),
            }
            for k in calibration.keys.values()
        ],
        "skipped": list(calibration.skipped),
    }


# ------------------------------------------------------------------------------------------------------------
# One prediction with provenance


def predict_point(
    calibration: Calibration,
    dep: Deployment,
    *,
    isl: int,
    osl: int,
    concurrency: int | None = None,
    gpu_count: int | None = None,
) -> Prediction:
    """The model's prediction, or the measurement of this exact configuration when there is one."""
    check_supported(dep)
    count = gpu_count or dep.tp
    eff = calibration.efficiency(dep.engine, dep.gpu, dep.quant)
    prediction = predict(dep, eff, isl=isl, osl=osl, concurrency=concurrency, gpu_count=count)
    match = calibration.measured_match(
        model=dep.model.slug,
        gpu=dep.gpu.slug,
        engine=dep.engine,
        quant=dep.quant.slug,
        tp=dep.tp,
        isl=isl,
        osl=osl,
        concurrency=concurrency,
        gpu_count=count,
    )
    if match is None:
        return prediction
    return replace(
        prediction,
        output_tokens_per_s=match.output_tokens_per_s,
        ttft_ms=match.ttft_p50_ms if match.ttft_p50_ms is not None else prediction.ttft_ms,
        tpot_ms=match.tpot_ms if match.tpot_ms is not None else prediction.tpot_ms,
        source="measured",
        error_band_rel=MEASURED_BAND,
        basis=f"measured: {match.source}",
        notes=(
            *prediction.notes,
            f"model predicted {prediction.output_tokens_per_s:.0f} tokens/s for this point",
            *(() if match.ttft_p50_ms is not None else ("ttft_ms is predicted (not in the measurement)",)),
        ),
    )
