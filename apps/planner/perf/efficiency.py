"""Efficiencies: the fractions of peak that a deployment reaches, factored into an engine part, a hardware part
and a precision part so that what is learnt on one GPU carries to another in proportion to the evidence.

Each efficiency is a transformed linear predictor over the deployment's factor levels:

    logit(MBU / upper) = intercept + engine + architecture + GPU + precision + engine x architecture
                         + engine x precision + MoE + slope x log2(TP)

(log instead of logit for the overheads and the collective latency). Every effect is shrunk towards zero with
a stated prior width, so a level with little data stays near the pooled value and an unseen level contributes
nothing: an engine never measured on Blackwell gets the engine's own effect plus Blackwell's, not another
engine's fit. The calibration (calibration.py) fits the coefficients; this module only turns them into values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from apps.catalog.specs import GpuSpec, QuantSpec


@dataclass(frozen=True)
class Efficiency:
    """The efficiencies of one deployment, and where they come from.

    mbu: achieved fraction of peak memory bandwidth when the dense linear layers stream weights.
    expert_mbu_ratio: what a mixture of experts' routed experts reach as a fraction of that MBU: each expert's
        slice of the step's tokens is a small GEMM of its own (grouped), which streams its weights less
        efficiently than one dense GEMM. A ratio, so the dense layers of every model share one MBU.
    mfu: achieved fraction of peak dense tensor throughput for matmuls and prefill attention.
    attention_mbu: fraction of peak bandwidth decode attention reaches streaming the KV cache.
    step_overhead_ms: fixed scheduler, sampling and launch cost per engine step.
    seq_overhead_us: cost per sequence in the step (scheduling, sampling, small per-sequence kernels).
    link_latency_us, link_efficiency: one collective's fixed cost and achieved fraction of link bandwidth.
    request_overhead_ms: what a request spends outside the engine's steps before its first token streams back
        (HTTP, tokenisation, scheduling, detokenisation): the floor of TTFT.
    evidence: corpus rows behind the levels this deployment uses, e.g. {"engine": 310, "engine x
        architecture": 12} (0 means the value is the pooled one).
    """

    mbu: float
    expert_mbu_ratio: float
    mfu: float
    attention_mbu: float
    step_overhead_ms: float
    seq_overhead_us: float
    link_latency_us: float
    link_efficiency: float
    request_overhead_ms: float
    calibration_key: str
    basis: str  # "fitted" or "prior"
    evidence: Mapping[str, int] = field(default_factory=dict)

    @property
    def expert_mbu(self) -> float:
        return self.mbu * self.expert_mbu_ratio


@dataclass(frozen=True)
class Parameter:
    name: str
    transform: str  # "logit" (bounded fraction) or "log" (positive)
    prior: float  # value of the intercept before any data
    upper: float = 1.0  # logit parameters live in (0, upper)
    factors: tuple[str, ...] = ()  # factor groups with an effect on this parameter
    slopes: tuple[str, ...] = ()

    def value(self, eta: Any) -> Any:
        """Linear predictor -> value (works on floats and arrays)."""
        if self.transform == "logit":
            return self.upper / (1.0 + _exp(-eta))
        return _exp(eta)

    def eta(self, value: float) -> float:
        if self.transform == "logit":
            p = min(max(value / self.upper, 1e-6), 1 - 1e-6)
            return math.log(p / (1 - p))
        return math.log(max(value, 1e-9))


def _exp(x: Any) -> Any:
    import numpy as np

    return np.exp(np.clip(x, -50.0, 50.0)) if not isinstance(x, float) else math.exp(max(-50.0, min(50.0, x)))


_DEPLOYMENT_FACTORS = (
    "engine",
    "engine generation",
    "platform",
    "architecture",
    "gpu",
    "precision",
    "engine x platform",
    "engine x architecture",
    "engine x precision",
)
_RUNTIME_FACTORS = (
    "engine",
    "engine generation",
    "platform",
    "architecture",
    "engine x platform",
    "engine x architecture",
)

# Priors: DESIGN.md's physics notes and public profiles. Tuned engines reach 50-65% of peak bandwidth in decode
# and 40-60% of peak tensor throughput in prefill; decode attention kernels stream long contiguous KV blocks.
# What the host side of an engine costs per sequence (scheduling, sampling, detokenising) depends on the engine
# and its software stack, not on the GPU's architecture.
_ENGINE_FACTORS = ("engine", "engine generation", "platform", "engine x platform")

PARAMETERS: tuple[Parameter, ...] = (
    Parameter("mbu", "logit", 0.60, 0.98, _DEPLOYMENT_FACTORS, ("log2_tp", "log2_pp")),
    Parameter("expert_mbu_ratio", "logit", 0.8, 1.0, ("engine", "platform", "engine x platform", "model")),
    Parameter("mfu", "logit", 0.45, 0.95, (*_DEPLOYMENT_FACTORS, "moe"), ("log2_tp", "log2_pp")),
    Parameter("attention_mbu", "logit", 0.70, 0.98, _RUNTIME_FACTORS),
    Parameter("step_overhead_ms", "log", 2.0, factors=_RUNTIME_FACTORS),
    Parameter("seq_overhead_us", "log", 20.0, factors=_ENGINE_FACTORS),
    Parameter("link_latency_us", "log", 10.0, factors=("link",)),
    Parameter("link_efficiency", "logit", 0.70, 0.98, ("link",)),
    Parameter("request_overhead_ms", "log", 15.0, factors=_RUNTIME_FACTORS),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)

# Prior widths (in the transformed scale) of each factor group's effects: how far a level may move from the
# pooled value before the data has to argue for it. Interactions and single GPUs are kept on a short leash.
FACTOR_WIDTH = {
    "engine": 0.8,
    # A superseded release line of an engine (its scheduler and kernels were rewritten since): what its rows
    # differ by from the current line, so that they do not pull the current release's efficiencies.
    "engine generation": 0.5,
    "platform": 0.5,  # CUDA, ROCm or CPU: the kernels' software stack
    "engine x platform": 0.4,
    "architecture": 0.6,
    "gpu": 0.3,
    "precision": 0.6,
    "engine x architecture": 0.35,
    "engine x precision": 0.35,
    "moe": 0.6,
    # A model's own kernels (expert routing, attention variant) run better or worse than the pooled average;
    # kept on a short leash, and a model without data contributes nothing.
    "model": 0.25,
    "link": 1.0,
}
SLOPE_WIDTH = {"log2_tp": 0.3, "log2_pp": 0.3}
INTERCEPT_WIDTH = 1.5

# Weight-only 4-bit formats share kernels; the GGUF k-quants and legacy quants likewise.
_PRECISION_CLASS = {
    "bf16": "16-bit",
    "fp16": "16-bit",
    "fp8": "fp8",
    "fp8-block": "fp8",
    "int8": "int8",
    "awq-int4": "w4a16",
    "gptq-int4": "w4a16",
    "w4a16": "w4a16",
    "nvfp4": "nvfp4",
    "mxfp4": "mxfp4",
    "gguf-q4_k_m": "gguf-4bit",
    "gguf-q4_0": "gguf-4bit",
    "gguf-q8_0": "gguf-8bit",
}


def precision_class(quant_slug: str) -> str:
    return _PRECISION_CLASS.get(quant_slug, quant_slug)


# Release lines that engines have since replaced, with the change that ended them; a release before the bound
# belongs to the old line. Sources: vLLM 0.8.0 release notes (V1 engine on by default, vllm-project/vllm#13726);
# SGLang v0.4 release blog, 2024-12-04 (overlapped, "zero-overhead" batch scheduler); TensorRT-LLM 1.0 (the
# PyTorch-backend LLM API line the perf-overview pages of 1.0 onwards measure); TGI v3.0 docs (chunked prefill
# and prefix caching by default). llama.cpp ships a build a day with no such break: it has no old line here.
_SUPERSEDED_BEFORE = {"vllm": (0, 8), "sglang": (0, 4), "trtllm": (1, 0), "tgi": (3, 0)}
_VERSION = re.compile(r"(?<![\w.])v?(\d+)\.(\d+)")
# NVIDIA's Triton containers (rYY.MM) bundle TensorRT-LLM; those of 2024 predate its 1.0 (2025).
_TRITON_RELEASE = re.compile(r"\br(\d\d)\.(\d\d)\b")


def engine_generation(engine: str, version: str) -> str:
    """The superseded release line a stated engine version belongs to ("vllm<0.8"), or "" for the current line
    and for versions not stated (most unstated ones are recent)."""
    bound = _SUPERSEDED_BEFORE.get(engine)
    if bound is None or not version:
        return ""
    label = f"{engine}<{bound[0]}.{bound[1]}"
    if engine == "trtllm" and (triton := _TRITON_RELEASE.search(version)):
        return label if (int(triton.group(1)), int(triton.group(2))) < (25, 1) else ""
    match = _VERSION.search(version)
    if match is None:
        return ""
    return label if (int(match.group(1)), int(match.group(2))) < bound else ""


@dataclass(frozen=True)
class Levels:
    """The factor levels of one deployment: what the efficiency of a row or a candidate depends on."""

    engine: str
    architecture: str
    gpu: str
    precision: str
    moe: bool
    tp: int
    link: str  # collective path class; "" when the replica has one GPU
    model: str = ""
    pp: int = 1
    platform: str = ""  # cuda, rocm or cpu
    generation: str = ""  # a superseded release line (see engine_generation); "" for the current one

    @classmethod
    def of(
        cls,
        engine: str,
        gpu: GpuSpec,
        quant: QuantSpec | str,
        *,
        moe: bool,
        tp: int,
        link: str,
        model: str = "",
        pp: int = 1,
        engine_version: str = "",
    ) -> Levels:
        slug = quant if isinstance(quant, str) else quant.slug
        platform = "cpu" if gpu.is_cpu else "rocm" if gpu.architecture.startswith("cdna") else "cuda"
        return cls(
            engine,
            gpu.architecture,
            gpu.slug,
            precision_class(slug),
            moe,
            tp,
            link if tp > 1 else "",
            model,
            pp,
            platform,
            engine_generation(engine, engine_version),
        )

    def columns(self, factors: Iterable[str]) -> list[str]:
        """Names of the design columns this deployment switches on for these factor groups."""
        names = self._column_names
        return [names[factor] for factor in factors if names[factor]]

    @cached_property
    def _column_names(self) -> dict[str, str]:
        """Factor group -> the design column this deployment switches on ("" for none)."""
        levels = {
            "engine": self.engine,
            "engine generation": self.generation,
            "platform": self.platform,
            "engine x platform": f"{self.engine}/{self.platform}" if self.platform else "",
            "architecture": self.architecture,
            "gpu": self.gpu,
            "precision": self.precision,
            "engine x architecture": f"{self.engine}/{self.architecture}",
            "engine x precision": f"{self.engine}/{self.precision}",
            "moe": "moe" if self.moe else "",
            "link": self.link,
            "model": self.model,
        }
        return {factor: f"{factor}={level}" if level else "" for factor, level in levels.items()}

    def slope_values(self, slopes: Iterable[str]) -> dict[str, float]:
        values = {"log2_tp": math.log2(max(self.tp, 1)), "log2_pp": math.log2(max(self.pp, 1))}
        return {name: values[name] for name in slopes}

    @property
    def key(self) -> str:
        return f"{self.engine}/{self.architecture}/{self.precision}"


# The factor groups whose row counts a prediction reports as the evidence behind it.
EVIDENCE_FACTORS = ("engine", "engine x architecture", "engine x precision", "gpu")


@dataclass(frozen=True)
class EfficiencyModel:
    """Fitted (or prior) coefficients: per parameter an intercept, effects by design column, and slopes.

    `evidence` counts corpus rows per design column, so a prediction can say how much data stands behind it.
    """

    intercepts: Mapping[str, float]
    effects: Mapping[str, Mapping[str, float]]
    slopes: Mapping[str, Mapping[str, float]]
    evidence: Mapping[str, int]
    basis: str  # "fitted" or "prior"

    @classmethod
    def prior(cls) -> EfficiencyModel:
        return cls(
            intercepts={p.name: p.eta(p.prior) for p in PARAMETERS},
            effects={p.name: {} for p in PARAMETERS},
            slopes={p.name: {} for p in PARAMETERS},
            evidence={},
            basis="prior",
        )

    def efficiency(self, levels: Levels) -> Efficiency:
        values = {}
        slope_x = levels.slope_values(SLOPE_WIDTH)
        for p in PARAMETERS:
            effects, slopes = self.effects[p.name], self.slopes[p.name]
            effect = sum(effects.get(column, 0.0) for column in levels.columns(p.factors))
            slope = sum(slopes.get(name, 0.0) * slope_x[name] for name in p.slopes)
            values[p.name] = float(p.value(self.intercepts[p.name] + effect + slope))
        evidence = {
            factor: self.evidence.get(column, 0)
            for factor, column in zip(EVIDENCE_FACTORS, levels.columns(EVIDENCE_FACTORS), strict=False)
        }
        return Efficiency(
            **values,
            calibration_key=levels.key,
            basis=self.basis,
            evidence=evidence,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "intercepts": dict(self.intercepts),
            "effects": {k: dict(v) for k, v in self.effects.items()},
            "slopes": {k: dict(v) for k, v in self.slopes.items()},
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EfficiencyModel:
        return cls(
            intercepts=dict(data["intercepts"]),
            effects={k: dict(v) for k, v in data["effects"].items()},
            slopes={k: dict(v) for k, v in data["slopes"].items()},
            evidence=dict(data["evidence"]),
            basis=str(data["basis"]),
        )
