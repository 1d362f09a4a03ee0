"""One prediction at fixed lengths, as `manage.py predict` prints it: throughput, TTFT and TPOT with the
cross-validated error band of its group and how much evidence stands behind it, or the measurement of exactly
this configuration when there is one (measured beats predicted, and says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from apps.planner.perf.calibration import MEASURED_BAND, Band, Calibration
from apps.planner.perf.corpus import THROUGHPUT, TPOT, TTFT
from apps.planner.perf.deployment import Deployment, Source, UnsupportedCombination, check_supported
from apps.planner.perf.efficiency import Efficiency, Levels
from apps.planner.perf.memory import MemoryFit
from apps.planner.perf.steady import fixed_lengths
from apps.planner.perf.step import build_step_model, levels_of


@dataclass(frozen=True)
class Prediction:
    output_tokens_per_s: float  # total over all GPUs (replicas x per replica)
    ttft_ms: float
    tpot_ms: float
    fits: bool
    max_concurrent_sequences: int
    source: Source
    calibration_key: str
    bands: dict[str, Band]  # per metric: the cross-validated error of this prediction's group
    basis: str  # how the efficiencies were obtained, or the measurement's description
    evidence: dict[str, int]
    replicas: int
    memory: MemoryFit | None
    bound: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    experts_per_gpu: int | None = None  # routed experts each GPU holds (tensor-sharded over tp when ep is 1)

    @property
    def error_band_rel(self) -> float:
        """The throughput band's p90 absolute percentage error."""
        return self.bands[THROUGHPUT].p90_ape

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_tokens_per_s": round(self.output_tokens_per_s, 2),
            "ttft_ms": round(self.ttft_ms, 2) if math.isfinite(self.ttft_ms) else None,
            "tpot_ms": round(self.tpot_ms, 3) if math.isfinite(self.tpot_ms) else None,
            "fits": self.fits,
            "max_concurrent_sequences": self.max_concurrent_sequences,
            "source": self.source,
            "calibration_key": self.calibration_key,
            "error_band_rel": round(self.error_band_rel, 3),
            "error_bands": {metric: band.to_dict() for metric, band in self.bands.items()},
            "basis": self.basis,
            "evidence": dict(self.evidence),
            "replicas": self.replicas,
            "bound": self.bound,
            "memory": self.memory.to_dict() if self.memory else None,
            "experts_per_gpu": self.experts_per_gpu,
            "notes": list(self.notes),
        }


def _bands(calibration: Calibration, levels: Levels) -> dict[str, Band]:
    return {kind: calibration.band(levels, kind) for kind in (THROUGHPUT, TTFT, TPOT)}


def predict(
    dep: Deployment,
    eff: Efficiency,
    bands: dict[str, Band],
    *,
    isl: int,
    osl: int,
    concurrency: int | None = None,
    gpu_count: int | None = None,
) -> Prediction:
    """Fixed-length prediction; gpu_count beyond one replica's GPUs runs gpu_count // gpus replicas."""
    count = gpu_count or dep.gpus
    if count % dep.gpus:
        raise UnsupportedCombination(
            "invalid_parallelism",
            f"gpu count {count} is not a multiple of the {dep.gpus} GPUs of one replica",
        )
    replicas = count // dep.gpus
    offline = concurrency is None
    seqs = dep.max_num_seqs or (dep.profile.offline_max_num_seqs if offline else dep.profile.max_num_seqs)
    step = build_step_model(dep, eff, context_tokens=isl + osl, max_num_seqs=seqs)
    assert step.memory is not None
    notes = [
        "offline: all requests queued; ttft_ms counts from admission"
        if offline
        else f"closed loop: {concurrency} requests in flight across {replicas} replica(s)"
    ]
    experts = dep.model.num_experts
    common = {
        "experts_per_gpu": (experts // dep.ep if dep.ep > 1 else experts) if experts else None,
        "source": "predicted",
        "calibration_key": eff.calibration_key,
        "bands": bands,
        "basis": eff.basis,
        "evidence": dict(eff.evidence),
        "replicas": replicas,
        "memory": step.memory,
    }
    if not step.memory.fits:
        return Prediction(
            output_tokens_per_s=0.0,
            ttft_ms=math.inf,
            tpot_ms=math.inf,
            fits=False,
            max_concurrent_sequences=step.memory.max_concurrent_sequences,
            bound="memory",
            notes=(step.memory.reason, *notes),
            **common,  # type: ignore[arg-type]
        )
    per_replica = math.inf if concurrency is None else max(1, math.ceil(concurrency / replicas))
    state = fixed_lengths(step, [isl], [osl], [per_replica])
    return Prediction(
        output_tokens_per_s=float(state.output_tokens_per_s[0]) * replicas,
        ttft_ms=float(state.ttft_s[0]) * 1e3,
        tpot_ms=float(state.tpot_s[0]) * 1e3,
        fits=True,
        max_concurrent_sequences=int(state.capacity[0]) * replicas,
        bound=str(state.bound[0]),
        notes=tuple(notes),
        **common,  # type: ignore[arg-type]
    )


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
    count = gpu_count or dep.gpus
    levels = levels_of(dep)
    prediction = predict(
        dep,
        calibration.efficiency(levels),
        _bands(calibration, levels),
        isl=isl,
        osl=osl,
        concurrency=concurrency,
        gpu_count=count,
    )
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
    measured_band = Band(MEASURED_BAND, MEASURED_BAND, 1, "measured: run-to-run spread")
    return replace(
        prediction,
        output_tokens_per_s=match.output_tokens_per_s,
        ttft_ms=match.ttft_p50_ms if match.ttft_p50_ms is not None else prediction.ttft_ms,
        tpot_ms=match.tpot_ms if match.tpot_ms is not None else prediction.tpot_ms,
        source="measured",
        bands={**prediction.bands, THROUGHPUT: measured_band},
        basis=f"measured: {match.source}",
        notes=(
            *prediction.notes,
            f"model predicted {prediction.output_tokens_per_s:.0f} tokens/s for this point",
            *(() if match.ttft_p50_ms is not None else ("ttft_ms is predicted (not in the measurement)",)),
        ),
    )
